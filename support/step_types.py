"""The spec's parameter types (behave's `register_type` with `parse_type` enums).

One step per action instead of step pairs: "a chat answer" / "a streamed text completion", "the
printed answer" / "the JSON response". A misspelt value fails when the step is parsed, not as a
`KeyError` while it runs. Imported by every step module (registering twice is harmless).
"""

from __future__ import annotations

from behave import register_type
from parse_type import TypeBuilder

from . import api_checks, schemas
from .openai_http import HEALTH, MODELS
from .driver import Api

# How a question is put to the server: (endpoint, streamed).
ANSWER_KIND = {
    "a chat answer": (Api.CHAT, False),
    "a streamed chat answer": (Api.CHAT, True),
    "a text completion": (Api.TEXT, False),
    "a streamed text completion": (Api.TEXT, True),
}

# What a well-formed answer is, per form.
FORM = {
    "chat completion": api_checks.check_chat_batch,
    "text completion": api_checks.check_completion_batch,
    "chat completion stream": api_checks.check_chat_stream,
    "text completion stream": api_checks.check_completion_stream,
}

# Which earlier answer a check is about (support.driver.Sut.answer).
WHICH_ANSWER = {
    "the answer": "any",
    "the streamed answer": "streamed",
    "the printed answer": "printed",
    "the JSON response": "json",
}

# How the command line prints its answer.
OUTPUT = {"as plain text": (), "with --json": ("--json",)}

DOCUMENT = {"run": schemas.CLI_RUN_SUCCESS, "list": schemas.CLI_LIST}

SERVER_RESOURCE = {"health": HEALTH, "list of models": MODELS}

# What a scenario starts from: a model, or a running server for it (True).
SUBJECT = {"the portfolio model": False, "a server for the portfolio model": True}
ANY_CHAT_MODEL = {"any portfolio chat model": False, "a server for any portfolio chat model": True}

# Embeddings: which embedding model (and whether through an embed-serve backend), how the command
# line gets its texts (support.driver.Sut.embed_cli), how the server encodes its vectors.
EMBEDDER = {"the portfolio embedding model": False, "an embeddings server for the portfolio embedding model": True}
ANY_EMBEDDER = {"any portfolio embedding model": False, "an embeddings server for any portfolio embedding model": True}
EMBED_INPUT = {"as an argument": "argument", "from stdin": "stdin", "as a batch": "batch"}
ENCODING = {"as floats": "float", "as base64": "base64"}
EMBED_VIA = {"the embeddings server": "embed-serve", "the chat server": "proxy"}

# Speech: which speech model (and whether through a server for it), what is asked of a recording.
ANY_SPEECH_MODEL = {"any portfolio speech model": False, "a server for any portfolio speech model": True}
SPEECH_TASK = {"transcription": "transcribe", "translation": "translate"}

register_type(
    AnySpeechModel=TypeBuilder.make_enum(ANY_SPEECH_MODEL),
    SpeechTask=TypeBuilder.make_enum(SPEECH_TASK),
    Embedder=TypeBuilder.make_enum(EMBEDDER),
    AnyEmbedder=TypeBuilder.make_enum(ANY_EMBEDDER),
    EmbedInput=TypeBuilder.make_enum(EMBED_INPUT),
    Encoding=TypeBuilder.make_enum(ENCODING),
    EmbedVia=TypeBuilder.make_enum(EMBED_VIA),
    Subject=TypeBuilder.make_enum(SUBJECT),
    AnyChatModel=TypeBuilder.make_enum(ANY_CHAT_MODEL),
    AnswerKind=TypeBuilder.make_enum(ANSWER_KIND),
    Api=TypeBuilder.make_enum({"a chat answer": Api.CHAT, "a text completion": Api.TEXT}),
    Form=TypeBuilder.make_enum(FORM),
    WhichAnswer=TypeBuilder.make_enum(WHICH_ANSWER),
    Output=TypeBuilder.make_enum(OUTPUT),
    Document=TypeBuilder.make_enum(DOCUMENT),
    Resource=TypeBuilder.make_enum(SERVER_RESOURCE),
    Stops=TypeBuilder.make_enum({"a stop string taken from its middle": 1,
                                 "a list of two stop strings, the later one first": 2}),
)
