@live_e2e @server
Feature: The server rejects bad input cleanly and survives real clients
  Real clients send mistakes, talk at the same time, and hang up. The server must answer bad
  input with a 4xx and a JSON error body (never a 5xx, a dropped connection or a 200), keep
  concurrent answers apart, recover when a client disconnects mid-stream, and work with the
  official OpenAI Python client.

  @portfolio.chat
  Scenario Outline: Bad requests to <model> get clean errors and the server keeps working
    Given a server for the portfolio model "<model>"
    Then each bad request gets a clean client error and the next valid request still succeeds:
      | bad request                     | status |
      | an unknown model                | 404    |
      | malformed JSON                  | 400    |
      | no messages                     | 400    |
      | max_tokens given as text        | 400    |
      | a negative temperature          | 4xx    |
      | an empty list of messages       | 4xx    |

    Examples:
      | model |

  Scenario: A request for a model that is not installed is refused at once and holds up nobody
    Given a server for any portfolio chat model
    When one client asks for a model that is not installed while another asks the served model
    Then the model that is not installed is refused within 2 seconds, without holding up the served model

  @portfolio.chat @use.with_portfolio=demo @slow
  Scenario Outline: Four simultaneous requests to <model> each get their own answer
    Given a server for the portfolio model "<model>"
    When I send four golden prompts at the same time
    Then each answer is the golden answer of its own prompt

    Examples:
      | model |

  @portfolio.chat @streaming
  Scenario Outline: <model> recovers when a streaming client hangs up
    Given a server for the portfolio model "<model>"
    When a streaming client hangs up after the first chunks
    Then the next chat request succeeds within the request timeout

    Examples:
      | model |

  @portfolio.chat @streaming @use.with_portfolio=demo
  Scenario Outline: The official OpenAI client gets <model>'s answer, batch and streamed
    Given a server for the portfolio model "<model>"
    When I ask the official OpenAI client for the model's first golden answer, batch and streamed
    Then both equal the answer over raw HTTP

    Examples:
      | model |
