@live_e2e @cli @needs.cli
Feature: Command-line answers
  Many users meet their models on the command line, and scripts trust what `mlxk run`
  prints and the exit code it returns (mlx-knife #38: an error printed with exit code 0).
  For example, asked "What is the capital of Japan?", the demo model gemma-style prints
  "The capital of Japan is Tokyo." and nothing else.

  Rule: A prompt on the command line gets the model's clean answer

    @portfolio.chat @critical @allure.issue:20
    Scenario Outline: A prompt on the command line gets a clean answer from <model>
      Given the portfolio model "<model>"
      When I ask the model its first prompt on the command line as plain text
      Then the command succeeds with a non-empty answer
      And the printed answer shows no end or template token

      Examples: every chat model of the portfolio
        | model |

    @portfolio.chat @use.with_portfolio=demo @critical
    Scenario Outline: The command line gives the golden answer of <model>
      Given the portfolio model "<model>"
      When I ask the model its first prompt on the command line as plain text
      Then the printed answer is the model's golden answer

      Examples: every chat model of the demo portfolio
        | model |

  @needs.cli_json
  Rule: Machine-readable output is one JSON document with the same answer

    @portfolio.chat @allure.issue:20
    Scenario Outline: Machine-readable output of <model> is one JSON document with the same answer
      Given the portfolio model "<model>"
      When I ask the model its first prompt on the command line as plain text
      And I ask the model its first prompt on the command line with --json
      Then stdout holds exactly one JSON document that matches the run schema
      And the JSON response equals the printed answer
      And the JSON response shows no end or template token

      Examples: every chat model of the portfolio
        | model |

    @portfolio.chat @use.with_portfolio=demo
    Scenario Outline: A token limit on the command line truncates the long answer of <model>
      Given the portfolio model "<model>"
      When I ask the model its longest prompt on the command line with --json and at most 5 tokens
      Then the answer is a strict prefix of the golden answer
      And the answer ends with finish reason "length"

      Examples: every chat model of the demo portfolio
        | model |

  Rule: Failures end with a message and a non-zero exit code

    @allure.issue:38
    Scenario: An unknown model fails with exit code 1 and names the model
      When I ask the model "mlx-e2e-no-such/model" a prompt on the command line as plain text
      Then the command fails with exit code 1
      And its output names "mlx-e2e-no-such/model"

    @allure.issue:38 @needs.cli_json
    Scenario: An unknown model with --json fails with an error document
      When I ask the model "mlx-e2e-no-such/model" a prompt on the command line with --json
      Then the command fails with exit code 1
      And stdout holds exactly one JSON error document naming "mlx-e2e-no-such/model"

    Scenario: A missing prompt without a terminal fails cleanly instead of waiting
      Given any portfolio chat model
      When I run the model on the command line without a prompt and without a terminal
      Then the command ends by itself at most 20 seconds later than a one-token answer does
      And the command fails with a non-zero exit code and a message

  Rule: The listing and the model card are machine-readable

    @blocker @needs.listing
    Scenario: The listing is valid JSON and holds every portfolio model
      When I list the models on the command line with --json
      Then stdout holds exactly one JSON document that matches the list schema
      And every discovered portfolio model is listed with the fields discovery relies on

    @use.with_portfolio=demo @needs.listing
    Scenario: The listing gives every demo model its intended outcome
      When I list the models on the command line with --json
      Then every model of the demo manifest is listed with its intended outcome

    @needs.model_card
    Scenario: A portfolio model can be shown as JSON
      Given any portfolio chat model
      When I show the model on the command line with --json
      Then the command succeeds with one JSON document about the model
