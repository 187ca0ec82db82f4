@live_e2e @server @load
Feature: Under load the server stays right, steady and within its memory
  A model server is used by several clients at once, for hours: batch and streamed chat, text
  completions, stop strings, and clients that give up halfway. Under such a load every client must
  still get its own right answer, the server must not crash, slow down request by request, or grow
  its memory with every request it serves.

  For every chat model the suite sends a mixed workload from several clients at once for a few
  seconds (more with -D load_requests=N -D load_clients=C -D load_seconds=S), judges every answer
  (the golden answer on the demo portfolio; elsewhere the same server's answer to the same request
  asked alone), and samples the server's resident memory. Latency, throughput and memory go to
  reports/metrics.json; the memory series and every request are attached to the report.

  Rule: Several clients at once, for a while, each get their own right answer

    @portfolio.chat @streaming @needs.text_completions
    Scenario Outline: <model> serves chat and text completions to several clients at once
      Given a server for the portfolio model "<model>"
      When several clients send it a mixed workload for a while, some hanging up mid-stream
      Then the server kept its pace and its memory did not grow beyond the bound
      And every request was answered without error and every answer was right

      Examples: every chat model of the portfolio
        | model |
