"""Every JSON Schema of the SUT's machine-readable answers (CLI and server), and one validator that
explains itself."""

from __future__ import annotations

import json

import jsonschema

_ERROR = {"type": "object", "required": ["type", "message"],
          "properties": {"type": {"type": "string", "minLength": 1},
                         "message": {"type": "string", "minLength": 1}}}

CLI_RUN_SUCCESS = {
    "type": "object",
    "required": ["status", "command", "data", "error"],
    "properties": {
        "status": {"const": "success"},
        "command": {"const": "run"},
        "error": {"type": "null"},
        "data": {"type": "object", "required": ["model", "prompt", "response"],
                 "properties": {"model": {"type": "string"}, "prompt": {"type": "string"},
                                "response": {"type": "string", "minLength": 1},
                                "finish_reason": {"type": ["string", "null"]}}},
    },
}

CLI_ERROR = {
    "type": "object",
    "required": ["status", "data", "error"],
    "properties": {"status": {"const": "error"}, "data": {"type": "null"}, "error": _ERROR},
}

# A failed `mlxk run --json`: an error document that says which command failed.
CLI_RUN_ERROR = {**CLI_ERROR, "required": [*CLI_ERROR["required"], "command"],
                 "properties": {**CLI_ERROR["properties"], "command": {"const": "run"}}}

# The fields of a `mlxk list --json` model entry that discovery and the suite rely on.
FIELDS = ("name", "size_bytes", "framework", "model_type", "capabilities", "health", "runtime_compatible")
LIST_SCHEMA = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "object", "required": ["models"], "properties": {"models": {
        "type": "array", "items": {"type": "object", "required": list(FIELDS), "properties": {
            "name": {"type": "string", "minLength": 1},
            "size_bytes": {"type": "integer", "minimum": 0},
            "framework": {"type": "string"},
            "model_type": {"type": "string"},
            "capabilities": {"type": "array", "items": {"type": "string"}},
            "health": {"type": "string"},
            "runtime_compatible": {"type": "boolean"},
        }}}}}},
}

# The whole listing as the CLI scenario checks it: the envelope plus the model entries above.
CLI_LIST = {"allOf": [LIST_SCHEMA, {
    "type": "object",
    "required": ["status", "command", "data"],
    "properties": {"status": {"const": "success"}, "command": {"const": "list"},
                   "data": {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}}},
}]}


# --- the OpenAI-compatible server's answers (support/api_checks.py) ---------------------------

FINISH_REASONS = ("stop", "length")

USAGE = {"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
          "properties": {k: {"type": "integer", "minimum": 0}
                         for k in ("prompt_tokens", "completion_tokens", "total_tokens")}}


def _completion_schema(obj: str, choice: dict) -> dict:
    """A batch answer: one choice, a known finish_reason, usage counts."""
    return {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "object": {"const": obj},
            "created": {"type": "integer"},
            "model": {"type": "string", "minLength": 1},
            "choices": {"type": "array", "items": {
                "type": "object", "required": ["index", "finish_reason", *choice["required"]],
                "properties": {"index": {"const": 0}, "finish_reason": {"enum": list(FINISH_REASONS)},
                               **choice["properties"]}}},
            "usage": USAGE,
        },
    }


CHAT_COMPLETION = _completion_schema("chat.completion", {
    "required": ["message"],
    "properties": {"message": {"type": "object", "required": ["role", "content"], "properties": {
        "role": {"const": "assistant"}, "content": {"type": "string", "minLength": 1}}}}})

TEXT_COMPLETION = _completion_schema("text_completion", {
    "required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}})


def _chunk_schema(obj: str) -> dict:
    """One stream chunk: the envelope and, when present, a choice of the right kind."""
    delta_or_text = ({"required": ["delta"], "properties": {"delta": {
        "type": "object", "properties": {"content": {"type": ["string", "null"]},
                                         "role": {"const": "assistant"}}}}}
                     if obj == "chat.completion.chunk" else
                     {"required": ["text"], "properties": {"text": {"type": "string"}}})
    return {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "object": {"const": obj},
            "created": {"type": "integer"},
            "model": {"type": "string", "minLength": 1},
            "choices": {"type": "array", "maxItems": 1, "items": {
                "type": "object", **delta_or_text,
                "properties": {"index": {"const": 0}, **delta_or_text["properties"]}}},
            "usage": {"anyOf": [{"type": "null"}, USAGE]},
        },
    }


CHAT_CHUNK = _chunk_schema("chat.completion.chunk")
TEXT_CHUNK = _chunk_schema("text_completion")

HEALTH = {"type": "object", "required": ["status"]}

MODELS = {
    "type": "object", "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {
        "type": "object", "required": ["id", "object"],
        "properties": {"id": {"type": "string", "minLength": 1}, "object": {"const": "model"}}}}},
}



# --- embeddings: `mlxk embed` records and POST /v1/embeddings (support/embedding_checks.py) --------

EMBED_METADATA = ("model", "dimensions", "content_hash", "device")  # documented in mlx-knife 2.0.8
_VECTOR = {"type": "array", "minItems": 1, "items": {"type": "number"}}
EMBED_RECORD = {
    "type": "object", "required": ["embedding", "metadata"],
    "properties": {"embedding": _VECTOR, "metadata": {
        "type": "object", "required": list(EMBED_METADATA),
        "properties": {"model": {"type": "string", "minLength": 1},
                       "dimensions": {"type": "integer", "minimum": 1},
                       "content_hash": {"type": "string", "minLength": 1},
                       "device": {"enum": ["cpu", "gpu"]}}}},
}
CLI_EMBED_SUCCESS = {
    "type": "object", "required": ["status", "command", "data", "error"],
    "properties": {"status": {"const": "success"}, "command": {"const": "embed"}, "error": {"type": "null"},
                   "data": {"type": "object", "required": ["records"],
                            "properties": {"records": {"type": "array", "minItems": 1, "items": EMBED_RECORD}}}},
}
EMBEDDINGS = {  # OpenAI's embeddings response; `embedding` a float list or a base64 string
    "type": "object", "required": ["object", "data", "model", "usage"],
    "properties": {
        "object": {"const": "list"},
        "model": {"type": "string", "minLength": 1},
        "data": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["object", "index", "embedding"],
            "properties": {"object": {"const": "embedding"}, "index": {"type": "integer", "minimum": 0},
                           "embedding": {"oneOf": [_VECTOR, {"type": "string", "minLength": 1}]}}}},
        "usage": {"type": "object", "required": ["prompt_tokens", "total_tokens"],
                  "properties": {"prompt_tokens": {"type": "integer", "minimum": 0},
                                 "total_tokens": {"type": "integer", "minimum": 0}}},
    },
}

# OpenAI's audio API (openai-python types/audio): json is Transcription, verbose_json TranscriptionVerbose
# (duration of the input audio, language, text; segments optional, each with id, start, end, text).
TRANSCRIPTION = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
_SEGMENT = {"type": "object", "required": ["id", "start", "end", "text"],
            "properties": {"id": {"type": "integer"}, "start": {"type": "number"}, "end": {"type": "number"},
                           "text": {"type": "string"}}}
VERBOSE_TRANSCRIPTION = {
    "type": "object", "required": ["duration", "language", "text"],
    "properties": {"duration": {"type": "number", "minimum": 0}, "language": {"type": "string", "minLength": 1},
                   "text": {"type": "string"}, "segments": {"type": "array", "items": _SEGMENT}},
}


def parse_one_document(stdout: str, what: str, evidence: str = "") -> object:
    """stdout must hold exactly one JSON document and nothing else."""
    try:
        return json.loads(stdout)
    except ValueError as e:
        raise AssertionError(f"{what}: stdout is not one JSON document ({e}): {stdout[:300]!r}"
                             + (f"\n{evidence}" if evidence else "")) from None


def validate(doc: object, schema: dict, what: str, evidence: str = "") -> None:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise AssertionError(f"{what}: at {path}: {error.message}\n  document: {json.dumps(doc)[:500]}"
                             + (f"\n{evidence}" if evidence else ""))
