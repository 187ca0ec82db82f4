@live_e2e @server
Feature: The server rejects bad input cleanly and survives real clients
  Real clients send mistakes, talk at the same time, and hang up.

  - Bad input gets a 4xx and a JSON error body: never a 5xx, a dropped connection or a 200.
  - A request for a model that is not installed is refused at once and holds up nobody.
  - Concurrent answers stay apart.
  - A client that hangs up mid-stream does not harm the next one.
  - The official OpenAI Python client gets the same answers as raw HTTP.

  Rule: Bad input gets a clean client error and the server keeps working

    @portfolio.chat
    Scenario Outline: Bad requests to <model> get clean errors and the server keeps working
      Given a server for the portfolio model "<model>"
      When I send each bad request, each followed by a valid request:
        | bad request                     | status |
        | malformed JSON                  | 400    |
        | no messages                     | 400    |
        | max_tokens given as text        | 400    |
        | a negative temperature          | 4xx    |
        | an empty list of messages       | 4xx    |
      Then each bad request got a clean client error and the valid request after it succeeded

      Examples: every chat model of the portfolio
        | model |

    Scenario: A request for a model that is not installed is refused at once and holds up nobody
      Given a server for any portfolio chat model
      When one client asks for a model that is not installed while another asks the served model
      Then the model that is not installed is refused within 2 seconds, without holding up the served model

  Rule: Several clients at once, and clients that leave, are served correctly

    @portfolio.chat @use.with_portfolio=demo
    Scenario Outline: Four simultaneous requests to <model> each get their own answer
      Given a server for the portfolio model "<model>"
      When I send four golden prompts at the same time
      Then every answer is the golden answer of its own prompt

      Examples: every chat model of the demo portfolio
        | model |

    @portfolio.chat @streaming
    Scenario Outline: <model> recovers when a streaming client hangs up
      Given a server for the portfolio model "<model>"
      When a streaming client hangs up after the first chunks
      And I ask for a chat answer to the model's first prompt
      Then the answer is a well-formed chat completion

      Examples: every chat model of the portfolio
        | model |

  Rule: The official OpenAI client works

    @portfolio.chat @streaming @use.with_portfolio=demo
    Scenario Outline: The official OpenAI client gets <model>'s answer, batch and streamed
      Given a server for the portfolio model "<model>"
      When I ask the official OpenAI client for the model's first golden answer, batch and streamed
      Then both equal the answer over raw HTTP

      Examples: every chat model of the demo portfolio
        | model |
