@live_e2e @server
Feature: The OpenAI-compatible server answers every model correctly
  Applications talk to `mlxk serve` through the OpenAI API. For every model in the portfolio
  the server must report itself healthy, list the model it serves, and answer chat and text
  completion requests in batch and streaming mode with the shapes, finish reasons and token
  counts that clients rely on, without showing the model's end or template tokens.

  @portfolio.text @blocker
  Scenario Outline: The server of <model> is healthy and lists its model
    Given a server for the portfolio model "<model>"
    When I ask for the server's health
    Then the server reports that it is healthy
    When I ask for the server's list of models
    Then the list holds the served model

    Examples: every text model of the portfolio (chat and base models)
      | model |

  @portfolio.chat @critical @allure.issue:20
  Scenario Outline: A chat answer from <model> is a complete chat completion
    Given a server for the portfolio model "<model>"
    When I ask for a chat answer to the model's first prompt
    Then the answer is a well-formed chat completion
    And the answer shows no end or template token

    Examples: every chat model of the portfolio
      | model |

  @portfolio.chat @streaming @critical @allure.issue:20
  Scenario Outline: A streamed chat answer from <model> is a well-formed event stream
    Given a server for the portfolio model "<model>"
    When I ask for a streamed chat answer to the model's first prompt
    Then the answer is a well-formed chat completion stream
    And the streamed answer shows no end or template token

    Examples: every chat model of the portfolio
      | model |

  @portfolio.text @needs.text_completions @allure.issue:20
  Scenario Outline: A text completion from <model> is a complete text completion
    Given a server for the portfolio model "<model>"
    When I ask for a text completion to the model's first prompt
    Then the answer is a well-formed text completion
    And the answer shows no end or template token

    Examples: every text model of the portfolio (chat and base models)
      | model |

  @portfolio.text @streaming @needs.text_completions @allure.issue:20
  Scenario Outline: A streamed text completion from <model> is a well-formed event stream
    Given a server for the portfolio model "<model>"
    When I ask for a streamed text completion to the model's first prompt
    Then the answer is a well-formed text completion stream
    And the streamed answer shows no end or template token

    Examples: every text model of the portfolio (chat and base models)
      | model |
