@live_e2e @speech @needs.speech
Feature: Speech models write down what is said, and translate it to English
  A speech model (Whisper and its kin) turns a recording into text. People upload a sound file
  to the server, the way OpenAI's audio API takes it, or give it to `mlxk run MODEL --audio FILE`,
  and expect the words that were said, in the format they asked for: plain JSON, plain text,
  verbose JSON that also says which language was heard and how long the recording is, or
  subtitles. A multilingual model also translates what is said into English; an English-only
  model (named `.en`, like OpenAI's English checkpoints) cannot, and must say so before it runs.
  For example, the demo model whisper-style hears the German clip eins-de.wav and writes
  "eins zwei drei"; asked for a translation, it writes "one two three".

  Rule: The server writes down an uploaded recording, in the format asked for

    @portfolio.audio @server @use.with_portfolio=demo @critical
    Scenario Outline: <model> transcribes each clip to its golden transcript
      Given a server for the portfolio model "<model>"
      When I upload each of the model's clips for transcription
      Then each transcription is the golden transcript of its clip

      Examples: every speech model of the demo portfolio
        | model |

    @portfolio.audio @server @use.with_portfolio=demo
    Scenario Outline: <model> answers in each response format it offers, shaped as OpenAI's audio API
      Given a server for the portfolio model "<model>"
      When I upload the model's first clip for transcription as json, as text and as verbose_json
      Then each transcription has the shape of its format and is the golden transcript of its clip

      Examples: every speech model of the demo portfolio
        | model |

    @server @use.with_portfolio=demo
    Scenario: The verbose transcription says which language it heard and how long the recording is
      Given a server for any portfolio speech model
      When I upload the model's German clip for transcription as verbose_json
      Then the verbose transcription names the clip's language and the length of its recording

    @server
    Scenario: Subtitles are given when asked for, or the format is refused
      Given a server for any portfolio speech model
      When I upload the model's first clip for transcription as srt and as vtt
      Then each answer is subtitles of the golden transcript, or a clean refusal of the format

    @server @use.with_portfolio=demo
    Scenario: German is transcribed when the server is told the language
      Given a server for any portfolio speech model
      When I upload the model's German clips for transcription, telling it they are German
      Then each transcription is the golden transcript of its clip

    @server @use.with_portfolio=demo
    Scenario: A recording made at 8 kHz is transcribed like the same recording at 16 kHz
      Given a server for any portfolio speech model
      When I upload the model's first clip resampled to 8 kHz for transcription
      Then each transcription is the golden transcript of its clip

  Rule: A multilingual model translates to English; a model that cannot translate refuses before it runs

    @portfolio.audio @server @use.with_portfolio=demo @critical
    Scenario Outline: <model> translates each clip to English, or refuses cleanly when it cannot translate
      Given a server for the portfolio model "<model>"
      When I upload each of the model's clips for translation
      Then each translation is the golden English of its clip, or a clean refusal when the model cannot translate

      Examples: every speech model of the demo portfolio
        | model |

    @portfolio.audio @cli @use.with_portfolio=demo @needs.cli
    Scenario Outline: The command line translates German to English with <model>, or refuses before running it
      Given the portfolio model "<model>"
      When I translate the model's German clip on the command line, telling it the clip is German
      Then the command gives the golden English of the clip, or refuses with exit code 1 before decoding when the model cannot translate

      Examples: every speech model of the demo portfolio
        | model |

  Rule: The command line writes down a recording

    @cli @needs.cli
    Scenario: The command line's machine-readable transcription is one JSON document with the transcript
      Given any portfolio speech model
      When I transcribe the model's first clip on the command line with --json
      Then the command printed one JSON document that matches the run schema, with the transcript as its response

  Rule: Every way of transcribing gives the same text

    @portfolio.audio @parity @needs.cli
    Scenario Outline: The server, the command line and mlx-audio itself transcribe the clips of <model> alike
      Given a server for the portfolio model "<model>"
      When I transcribe each of the model's clips with mlx-audio directly and on the server, and the first on the command line
      Then the server's transcription of each clip is mlx-audio's
      And the command line's transcription of the first clip is the server's

      Examples: every speech model of the portfolio
        | model |

    @server @use.with_portfolio=demo
    Scenario: An application using the official OpenAI client gets the transcript
      Given a server for any portfolio speech model
      When the official OpenAI client uploads the model's first clip for transcription
      Then each transcription is the golden transcript of its clip

  Rule: Bad input gets a clean error, and the product keeps working

    @portfolio.audio @server
    Scenario Outline: <model> refuses a bad upload cleanly and keeps transcribing
      Given a server for the portfolio model "<model>"
      When I send each bad upload, each followed by a good one:
        | bad upload               | status |
        | an empty file            | 4xx    |
        | bytes that are not audio | 4xx    |
      Then each bad request got a clean client error and the valid request after it succeeded
      And no error message shows a file path of the machine

      Examples: every speech model of the portfolio
        | model |

    @server
    Scenario: A language no model knows is refused cleanly
      Given a server for any portfolio speech model
      When I send each bad upload, each followed by a good one:
        | bad upload                | status |
        | a language no model knows | 4xx    |
      Then each bad request got a clean client error and the valid request after it succeeded

    @server
    Scenario: A recording sent for transcription by a chat model is refused cleanly
      Given a server for any portfolio speech model
      When I upload the model's first clip for transcription by a chat model of the portfolio
      Then the upload got a clean client error and a good upload after it succeeded

    @server
    Scenario: A chat request to a speech model is refused at once and the model keeps transcribing
      Given a server for any portfolio speech model
      When I ask the speech model for a chat answer, then upload its first clip
      Then the chat request got a clean client error within 2 seconds and the upload after it succeeded

    @cli @needs.cli
    Scenario: A missing sound file on the command line fails cleanly
      Given any portfolio speech model
      When I transcribe a sound file that does not exist on the command line, as plain text and with --json
      Then both commands fail with exit code 1 and name the missing sound file
      And the --json command prints exactly one JSON error document

    @cli @needs.cli
    Scenario: A file that is not a recording fails cleanly on the command line
      Given any portfolio speech model
      When I transcribe a file that is not a recording on the command line with --json
      Then the command fails with exit code 1
      And the --json command prints exactly one JSON error document
      And no error message shows a file path of the machine
