@live_e2e @vision
Feature: Vision models answer questions about images
  A vision model is a chat model that also looks at images. People send it a picture with a
  question, over the OpenAI chat API (the image as a base64 data URL in an `image_url` part of
  the message) or with `mlxk run --image`, and expect the model's answer, as well-formed as any
  chat answer, without the template's image or end tokens ([IMG], [INST], </s>).
  For example, shown a red square and asked "What color is this square?", the demo model
  vision-style answers "The square is red.".

  The answer is the model's text alone. A client shows `message.content` (and a script prints
  stdout) as the answer; a table of file names before it is part of what the user reads, so it
  is a defect of the product, registered once below. The golden and parity checks compare the
  model's text after such a table, and say so in their steps, so that the table does not hide
  a wrong answer.

  @needs.vision
  Rule: The server answers a question about an image

    @portfolio.vision @server @streaming @critical
    Scenario Outline: <model> answers a question about an image, in one piece and streamed
      Given a server for the portfolio model "<model>"
      When I ask the model its first question about an image, in one piece and streamed
      Then each answer about an image is well-formed, ends with finish reason "stop" and reports its usage
      And no answer about an image shows an end or template token

      Examples: every vision model of the portfolio
        | model |

    @portfolio.vision @server @critical
    Scenario Outline: An answer of <model> about an image is the model's text alone
      Given a server for the portfolio model "<model>"
      When I ask the model its first question about an image, in one piece and streamed
      Then no answer about an image holds anything but the model's text

      Examples: every vision model of the portfolio
        | model |

    @portfolio.vision @server @streaming @use.with_portfolio=demo @critical
    Scenario Outline: <model> gives its golden answers about images, in one piece and streamed
      Given a server for the portfolio model "<model>"
      When I ask the model each of its questions about images, in one piece and streamed
      Then the model's text in each answer, after any image table, is the golden answer of its question

      Examples: every vision model of the demo portfolio
        | model |

    @portfolio.vision @server @use.with_portfolio=demo
    Scenario Outline: <model> answers a question about two images in one message as one question
      Given a server for the portfolio model "<model>"
      When I ask the model its question about two images without saying how to batch them
      Then the model's text in each answer, after any image table, is the golden answer of its question

      Examples: every vision model of the demo portfolio
        | model |

    @portfolio.vision @server @use.with_portfolio=demo
    Scenario Outline: <model> asked about two images one at a time answers each, in the order they were sent
      Given a server for the portfolio model "<model>"
      When I ask the model its question about two images, one image at a time
      Then the answer holds, for each image in the order sent, the golden answer about that image alone

      Examples: every vision model of the demo portfolio
        | model |

    @portfolio.vision @server @streaming
    Scenario Outline: A streamed answer of <model> about an image arrives in pieces
      Given a server for the portfolio model "<model>"
      When I ask the model its first question about an image, streamed
      Then the streamed answer came in more than one content chunk

      Examples: every vision model of the portfolio
        | model |

  @needs.vision @needs.cli
  Rule: The command line answers a question about an image

    @portfolio.vision @cli @critical
    Scenario Outline: The command line answers a question about an image with <model>
      Given the portfolio model "<model>"
      When I ask the model its first question about an image on the command line as plain text
      And I ask the model its first question about an image on the command line with --json
      Then each answer about an image on the command line succeeded
      And no answer about an image shows an end or template token
      And the JSON response is one document that matches the run schema

      Examples: every vision model of the portfolio
        | model |

    @portfolio.vision @cli @use.with_portfolio=demo @critical
    Scenario Outline: The command line gives the golden answers about images of <model>
      Given the portfolio model "<model>"
      When I ask the model one question about images of each kind on the command line as plain text
      Then the model's text in each answer, after any image table, is the golden answer of its question

      Examples: every vision model of the demo portfolio
        | model |

  @needs.vision
  Rule: Every way of asking about an image gives the same answer

    @portfolio.vision @parity @streaming
    Scenario Outline: A streamed answer of <model> about an image equals its answer in one piece
      Given a server for the portfolio model "<model>"
      When I ask the model each of its questions about images, in one piece and streamed
      Then each streamed answer about an image is the batch answer, character for character

      Examples: every vision model of the portfolio
        | model |

    @portfolio.vision @parity @needs.cli
    Scenario Outline: The command line gives the server's answer about an image with <model>
      Given a server for the portfolio model "<model>"
      When I ask the model its first question about an image on the server and on the command line
      Then the model's text is the same on the command line as on the server

      Examples: every vision model of the portfolio
        | model |

    @portfolio.vision @parity
    Scenario Outline: The server's answers of <model> about images are mlx-vlm's own greedy answers
      Given a server for the portfolio model "<model>"
      When I decode each of the model's questions about images greedily with mlx-vlm and ask the server the same
      Then the model's text in each server answer, after any image table, is the reference answer

      Examples: every vision model of the portfolio
        | model |

  Rule: Bad image input gets a clean error and the product keeps working

    @portfolio.vision @server @needs.vision
    Scenario Outline: <model> refuses bad images cleanly and keeps answering
      Given a server for the portfolio model "<model>"
      When I send each bad image request, each followed by a good question about an image:
        | bad image request            | status |
        | an unsupported URL scheme    | 4xx    |
        | an image over the size limit | 4xx    |
        | bytes that are not an image  | 4xx    |
      Then each bad request got a clean client error and the valid request after it succeeded
      And no error message shows a file path of the machine

      Examples: every vision model of the portfolio
        | model |

    @server
    Scenario: An image sent to a text-only model is refused cleanly
      Given a server for a text-only portfolio chat model
      When I send each bad image request, each followed by a good question about an image:
        | bad image request             | status |
        | an image to a text-only model | 4xx    |
      Then each bad request got a clean client error and the valid request after it succeeded

    @portfolio.vision @cli @needs.vision @needs.cli
    Scenario Outline: A missing image file on the command line fails cleanly with <model>
      Given the portfolio model "<model>"
      When I ask the model about an image file that does not exist on the command line, as plain text and with --json
      Then both commands fail with exit code 1 and name the missing file
      And the --json command prints exactly one JSON error document

      Examples: every vision model of the portfolio
        | model |

    @portfolio.vision @cli @needs.vision @needs.cli
    Scenario Outline: A file that is not an image fails cleanly on the command line with <model>
      Given the portfolio model "<model>"
      When I ask the model about a file that is not an image on the command line with --json
      Then the command fails with exit code 1
      And the --json command prints exactly one JSON error document
      And no error message shows a file path of the machine

      Examples: every vision model of the portfolio
        | model |
