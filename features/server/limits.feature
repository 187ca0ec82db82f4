@live_e2e @server @use.with_portfolio=demo
Feature: Token limits and stop sequences are honoured exactly
  Clients cap answers with `max_tokens` and cut them with `stop` sequences (mlx-knife #68:
  stop text sent before the cut).

  - A capped answer says so (`finish_reason: length`) and holds exactly the tokens asked for.
  - A stop sequence cuts the answer right before its earliest occurrence and is never shown,
    in batch and streaming mode alike.

  Rule: A token limit is reported and exact

    @portfolio.chat
    Scenario Outline: A token limit below the natural length of <model>'s answer is reported
      Given a server for the portfolio model "<model>"
      When I ask for a chat answer to the model's longest golden prompt with at most 3 tokens
      Then the answer ends with finish reason "length"
      And the answer used exactly 3 completion tokens
      And the answer is a strict prefix of the golden answer

      Examples: every chat model of the demo portfolio
        | model |

  Rule: Stop strings cut before their earliest occurrence, in batch and streaming mode

    @portfolio.chat @allure.issue:68
    Scenario Outline: A stop string cuts <model>'s answer before it, in batch and streaming mode
      Given a server for the portfolio model "<model>"
      When I ask for a chat answer to the model's longest golden prompt with a stop string taken from its middle
      And I ask for the same answer streamed
      Then both answers end right before the earliest stop string and never show it

      Examples: every chat model of the demo portfolio
        | model |

    @portfolio.chat @allure.issue:68
    Scenario Outline: A list of stop strings cuts <model>'s answer at the earliest one
      Given a server for the portfolio model "<model>"
      When I ask for a chat answer to the model's longest golden prompt with a list of two stop strings, the later one first
      And I ask for the same answer streamed
      Then both answers end right before the earliest stop string and never show it

      Examples: every chat model of the demo portfolio
        | model |
