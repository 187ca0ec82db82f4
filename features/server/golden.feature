@live_e2e @server @use.with_portfolio=demo
Feature: The server gives each demo model's golden answers
  The demo models are trained to answer their prompts exactly. Asked at temperature 0, the
  server must return those answers character for character, in batch and in streaming mode,
  including multibyte UTF-8 that byte-level tokens split, and stop where the model stops.
  For example, qwen-style answers "What is the capital of France?" with "The capital of France
  is Paris." and utf8-style answers "Show me sushi." with "Sushi 🍣 is tasty.".

  @portfolio.chat @critical
  Scenario Outline: <model> gives its golden chat answers
    Given a server for the portfolio model "<model>"
    When I ask for a chat answer to each of the model's golden prompts
    Then every answer is the golden answer of its own prompt
    And every answer ends with finish reason "stop"

    Examples: every chat model of the demo portfolio
      | model |

  @portfolio.chat @streaming @critical
  Scenario Outline: <model> streams its golden chat answers intact
    Given a server for the portfolio model "<model>"
    When I ask for a streamed chat answer to each of the model's golden prompts
    Then every answer is the golden answer of its own prompt
    And no answer holds a replacement character

    Examples: every chat model of the demo portfolio
      | model |
