@live_e2e @embeddings
Feature: Embeddings and pipes: the retrieval side
  Search, retrieval-augmented chat and deduplication start from embeddings: a model turns a text
  into a vector, and texts that mean the same get vectors close together. mlx-knife 2.0.8 embeds
  on the command line (`mlxk embed`), serves OpenAI's `/v1/embeddings` from a backend of its own
  (`mlxk embed-serve`), and lets the chat server hand embedding requests to that backend
  (`mlxk serve --embed-backend URL`), so an application needs one base URL for both. All of it is
  experimental: it needs MLXK2_ENABLE_ALPHA_FEATURES=1.
  For example, the demo model bert-style-embed gives "The cat sits on the mat." and "A cat is
  sitting on the mat." vectors far closer together than "Stock markets fell sharply today.", and
  the same numbers on the command line as from the server. Scripts also pipe text in:
  `echo PROMPT | mlxk run MODEL -` must answer as if the prompt were typed on the command line.

  @needs.embeddings
  Rule: The command line gives one record per input, with the documented metadata

    @cli @needs.cli
    Scenario: The command line embeds from an argument, from stdin and as a batch, one record per input
      Given any portfolio embedding model
      When I embed the first golden sentence on the command line as an argument
      And I embed the first golden sentence on the command line from stdin
      And I embed the golden sentences on the command line as a batch with --json
      Then each command gave one record per input with the model, its dimensions and one content hash
      And the first golden sentence has the same vector from an argument, from stdin and in the batch

    @cli @needs.cli
    Scenario: The metadata tells on which device the vectors were computed
      Given any portfolio embedding model
      When I embed the first golden sentence on the command line as an argument
      Then the record's device is the one MLX computes on

  @needs.embeddings
  Rule: The demo embedders keep their golden facts, for documents and for queries

    @portfolio.embeddings @use.with_portfolio=demo @critical @needs.cli
    Scenario Outline: The vectors of <model> have the golden dimension, unit norm, order, values and query prefix
      Given the portfolio embedding model "<model>"
      When I embed the golden sentences on the command line as a batch
      And I embed the golden queries on the command line as a batch with --query
      Then every vector has the model's dimension and unit norm
      And the same sentence gives the same vector each time
      And each paraphrase is closer to its sentence than the unrelated one, by the golden margin
      And the vectors equal the suite's reference vectors within their tolerance
      And the query vectors differ from the document vectors exactly when the model defines a query prefix
      And the query vectors equal the suite's reference query vectors within their tolerance

      Examples: every embedding model of the demo portfolio
        | model |

  @needs.embeddings
  Rule: The embeddings server speaks OpenAI's embeddings API with the command line's vectors

    @portfolio.embeddings @server @cli @needs.cli
    Scenario Outline: The embeddings server for <model> answers in OpenAI's shape with the command line's vectors
      Given an embeddings server for the portfolio embedding model "<model>"
      When I post the first golden sentence to the embeddings server as floats
      And I post the golden sentences to the embeddings server as base64
      And I embed the golden sentences on the command line as a batch with --json
      Then every response has OpenAI's embeddings shape with one embedding per input, in order
      And the server's vectors equal the command line's within 1e-05
      And each command gave one record per input with the model, its dimensions and one content hash

      Examples: every embedding model of the portfolio
        | model |

  @needs.embeddings
  Rule: The chat server gives one base URL for chat and embeddings

    @server
    Scenario: The chat server answers chat and hands embeddings to its backend unchanged
      Given an embeddings server for any portfolio embedding model
      And a chat server in front of it for any portfolio chat model
      When I ask the chat server its chat model's first prompt
      And I post the golden sentences to the chat server as floats
      And I post the golden sentences to the embeddings server as floats
      Then the chat server answered its chat model's prompt
      And the chat server's vectors equal the embeddings server's exactly

    @server
    Scenario: A chat request naming the embedding model is refused at once and chat keeps working
      Given an embeddings server for any portfolio embedding model
      And a chat server in front of it for any portfolio chat model
      And the chat server has answered its chat model's first prompt
      When I ask the chat server for a chat answer from the embedding model
      And I ask the chat server its chat model's first prompt
      Then the chat request for the embedding model got a client error within 2 seconds
      And the chat server answered its chat model's prompt as fast as before, give or take 2 seconds

  @needs.embeddings
  Rule: Bad input gets a clean refusal, and the backend keeps working

    @server
    Scenario: Bad embedding requests get a clean client error and the server keeps working
      Given an embeddings server for any portfolio embedding model
      When I send each bad embedding request, each followed by a valid one:
        | bad request                  | status |
        | an empty input list          | 400    |
        | an empty text                | 400    |
        | a number among the texts     | 400    |
        | an unknown encoding format   | 400    |
        | an unknown model             | 404    |
      Then each bad request got a clean client error and the valid request after it succeeded

    @cli @needs.cli
    Scenario: Embedding without the experimental flag fails with exit code 1 and says what to set
      Given any portfolio embedding model
      When I embed a sentence on the command line without MLXK2_ENABLE_ALPHA_FEATURES
      Then the command fails with exit code 1
      And its error message starts with "embed: Error:" and names "MLXK2_ENABLE_ALPHA_FEATURES=1"

    @cli @needs.cli
    Scenario: A batch line whose text is not a string is refused as invalid input
      Given any portfolio embedding model
      When I embed a batch line whose text is the number 5 on the command line with --json
      Then the command fails with exit code 1
      And stdout holds one JSON error document of type "ValidationError"

    @cli @needs.cli
    Scenario: An empty text is refused on the command line as on the server
      Given any portfolio embedding model
      When I embed an empty text on the command line
      Then the command fails with exit code 1

    @cli @needs.cli
    Scenario: A chat model asked for embeddings fails with exit code 1 and says why
      Given any portfolio chat model
      When I embed a sentence with that model on the command line
      Then the command fails with exit code 1
      And its output names "not recognized as an embedding model"

  Rule: A prompt piped on stdin gets the answer it gets on the command line

    @cli @needs.cli
    Scenario: A prompt piped on stdin gets the same answer as the prompt given as an argument
      Given any portfolio chat model
      When I ask the model its first prompt on the command line as plain text
      And I pipe the model its first prompt on stdin
      Then the piped answer equals the printed answer
