@live_e2e @cli
Feature: Command-line answers
  Many users meet their models on the command line, and scripts trust what `mlxk run`
  prints and the exit code it returns. For every model in the portfolio, a prompt on the
  command line gets a clean answer; machine-readable output is one valid JSON document; and
  failures are reported with a message and a non-zero exit code (mlx-knife #38: an error
  printed with exit code 0).

  @portfolio.chat @critical @allure.issue:20
  Scenario Outline: A prompt on the command line gets a clean answer from <model>
    Given the portfolio model "<model>"
    When I ask the model its first prompt on the command line
    Then the command succeeds with a non-empty answer
    And the printed answer shows no end or template token

    Examples:
      | model |

  @portfolio.chat @use.with_portfolio=demo @critical
  Scenario Outline: The command line gives the golden answer of <model>
    Given the portfolio model "<model>"
    When I ask the model its first prompt on the command line
    Then the printed answer is the model's golden answer

    Examples:
      | model |

  @portfolio.chat @allure.issue:20
  Scenario Outline: Machine-readable output of <model> is one JSON document with the same answer
    Given the portfolio model "<model>"
    When I ask the model its first prompt on the command line
    And I ask the same prompt on the command line with --json
    Then stdout holds exactly one JSON document that matches the run schema
    And the JSON response equals the plain answer
    And the JSON response shows no end or template token

    Examples:
      | model |

  @portfolio.chat @use.with_portfolio=demo
  Scenario Outline: A token limit on the command line truncates the long answer of <model>
    Given the portfolio model "<model>"
    When I ask the model its longest prompt on the command line with --json and at most 5 tokens
    Then the JSON response is a strict prefix of the golden answer
    And the JSON finish reason is "length"

    Examples:
      | model |

  @allure.issue:38
  Scenario: An unknown model fails with exit code 1 and names the model
    When I ask the model "mlx-e2e-no-such/model" a prompt on the command line
    Then the command fails with exit code 1
    And its output names "mlx-e2e-no-such/model"

  @allure.issue:38
  Scenario: An unknown model with --json fails with an error document
    When I ask the model "mlx-e2e-no-such/model" a prompt on the command line with --json
    Then the command fails with exit code 1
    And stdout holds exactly one JSON error document naming "mlx-e2e-no-such/model"

  Scenario: A missing prompt without a terminal fails cleanly instead of waiting
    Given any portfolio chat model
    When I run the model on the command line without a prompt and without a terminal
    Then the command ends by itself within 20 seconds
    And the command fails with a non-zero exit code and a message

  @blocker
  Scenario: The listing is valid JSON and holds every portfolio model
    When I list the models on the command line with --json
    Then stdout holds exactly one JSON document that matches the list schema
    And every discovered portfolio model is listed with the fields discovery relies on

  Scenario: A portfolio model can be shown as JSON
    Given any portfolio chat model
    When I show the model on the command line with --json
    Then the command succeeds with one JSON document about the model

