@live_e2e @performance
Feature: The SUT's speed is measured for every model
  People choose a model and a machine by how fast the answer comes: how long the server
  takes to start, how long until the first token, and how many tokens follow per second.
  For every model in the portfolio the suite measures one streamed answer at temperature 0
  and records the figures (in reports/metrics.json and the Allure report, with the figures
  every other scenario recorded). Thresholds are optional: with -D max_ttft_s and
  -D min_tokens_per_s a model that is too slow fails; without them the scenario only
  requires that the measurement itself succeeded.

  @portfolio.chat
  Scenario Outline: The speed of <model> is measured on a streamed answer
    Given a server for the portfolio model "<model>"
    When I time a streamed chat answer to the model's longest prompt at temperature 0
    Then the time to first token and the tokens per second were measured and recorded
    And they meet the thresholds given with -D max_ttft_s and -D min_tokens_per_s, if any were given

    Examples: every chat model of the portfolio
      | model |
