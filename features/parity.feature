@live_e2e @parity
Feature: Every way of asking gives the same answer
  People get a model's answer from the server in one piece or streamed token by token, and
  from the command line in a script or in a terminal. At temperature 0 a model is
  deterministic, so all of these must be the very same answer, character for character: a
  difference means the product changed the text on one path.

  - A streamed answer is the answer in one piece, and comes at most a few times slower.
  - The command line prints the server's answer, in a script and in a terminal alike.
  - A reference answer decoded directly with mlx-lm is the server's answer: the shared answer
    is the model's own, not an artefact of how mlx-knife formats the prompt, stops the model
    or turns tokens into text.
  - Reasoning models separate their reasoning from their answer the same way on every path.

  Rule: A streamed answer is the answer in one piece

    @portfolio.chat @streaming
    Scenario Outline: A streamed chat answer from <model> equals its answer in one piece
      Given a server for the portfolio model "<model>"
      When I ask for a chat answer to each of the model's prompts, once in one piece and once streamed
      Then each streamed answer is the batch answer, character for character
      And streaming them took at most 3 times as long as asking in one piece, plus 1 second

      Examples: every chat model of the portfolio
        | model |

    @portfolio.text @streaming @needs.text_completions
    Scenario Outline: A streamed text completion from <model> equals its completion in one piece
      Given a server for the portfolio model "<model>"
      When I ask for a text completion to each of the model's prompts, once in one piece and once streamed
      Then each streamed answer is the batch answer, character for character
      And streaming them took at most 3 times as long as asking in one piece, plus 1 second

      Examples: every text model of the portfolio (chat and base models)
        | model |

  Rule: The command line prints the server's answer

    @portfolio.chat @needs.cli @needs.cli_repetition_penalty
    Scenario Outline: The command line prints the server's answer of <model>
      Given a server for the portfolio model "<model>"
      When I ask the model's first prompt with the same sampling on the server and on the command line
      Then the command line prints the server's answer

      Examples: every chat model of the portfolio
        | model |

    @portfolio.chat @streaming @needs.cli @needs.cli_no_stream @needs.cli_repetition_penalty
    Scenario Outline: In a terminal the command line streams the same answer of <model> it prints with --no-stream
      Given the portfolio model "<model>"
      When I ask the model's first prompt on the command line in a terminal, streamed and with --no-stream
      Then the streamed output is the --no-stream output

      Examples: every chat model of the portfolio
        | model |

  Rule: The server's answer is the model's own

    @portfolio.chat
    Scenario Outline: The server's answers of <model> are the model's own greedy answers
      Given a server for the portfolio model "<model>"
      When I decode each of the model's prompts greedily with mlx-lm and ask the server the same with greedy sampling
      Then each server answer is the reference answer

      Examples: every chat model of the portfolio
        | model |

    @portfolio.chat @needs.cli @needs.cli_repetition_penalty
    Scenario Outline: <model> separates its reasoning from its answer the same way in every mode
      Given the portfolio model "<model>"
      And the model can show its reasoning
      And a server for the portfolio model "<model>"
      When I ask the model's first prompt in one piece, streamed, and on the command line in a script and in a terminal
      Then the reasoning and the answer are the same in every mode

      Examples: every chat model of the portfolio (those without reasoning markers are skipped, with the reason)
        | model |
