"""The fault catalogue: each fault the shim and proxy can inject, the bug class it stands for
(/work/shared/reference/real-bug-classes.md), and the slice of the live suite that must catch it.

A `Selection` is a small behave slice (one clean model, a few scenarios) so one run takes seconds.
`catches` are fragments of the scenario names that must fail *unexpectedly* (not as a registered
known issue). Faults the suite does not catch carry the reason: `masked_by` (a registered known
issue that swallows the failure) or `missing_check` (the check the suite lacks). Their detection
tests are strict xfails: a finding about the suite, never a faked pass.

Model choice: mlx-e2e-demo/gemma-style is clean on every server and CLI scenario used here
(its only registered failures are the ones every model shares: KI-002 no-prompt loop, KI-004 stop
strings in streams, KI-005 validation gaps). utf8-style is the only demo model with multibyte
goldens: a batch UTF-8 fault is caught there; its streams already carry U+FFFD (KI-006), so the
streaming UTF-8 fault is injected on gemma-style instead (stream-replacement-char). Registered
issues that share a scenario with other checks name the failure messages they cover (`messages` in
features/known_issues.toml), so a new defect in the same scenario is caught, not absorbed.

Speed: a stream many times slower than batch is caught by a default run (the parity scenario bounds
the streamed time by the batch time); a server that is uniformly slow, batch and stream alike, only
by the opt-in floor `-D min_tokens_per_s` (features/performance.feature): a default run cannot know
how fast a user's model should be.
"""

from __future__ import annotations

from dataclasses import dataclass

GEMMA = "mlx-e2e-demo/gemma-style"
UTF8 = "mlx-e2e-demo/utf8-style"


@dataclass(frozen=True)
class Selection:
    name: str
    args: tuple[str, ...]  # behave arguments (the shim's -D mlxk and the output options are added)
    about: str

    @property
    def shown(self) -> str:
        return " ".join(a if " " not in a and "|" not in a else repr(a) for a in self.args)


def _slice(name: str, about: str, *args: str, model: str = GEMMA) -> Selection:
    return Selection(name, ("--tags=@live_e2e", *args, "-D", f"include={model}"), about)


API = _slice("api", "server API shapes: health, models, chat and text, batch and stream",
             "--tags=@server", "-i", "api.feature")
API_TIMEOUTS = _slice("api-timeouts", "the server API slice with 5 s request and stream timeouts",
                      "--tags=@server", "-i", "api.feature", "-D", "request_timeout=5", "-D", "stream_timeout=5")
GOLDEN = _slice("golden", "golden answers, batch and streamed", "--tags=@server", "-i", "golden.feature")
GOLDEN_UTF8 = _slice("golden-utf8", "golden answers of the multibyte model (its streams fail with KI-006)",
                     "--tags=@server", "-i", "golden.feature", model=UTF8)
TOKEN_LIMIT = _slice("token-limit", "max_tokens below the natural length",
                     "--tags=@server", "-n", "A token limit below the natural length")
STOP = _slice("stop", "stop strings, batch and streamed (KI-004 fails these on every model)",
              "--tags=@server", "-n", "stop strings? cuts")
BAD_REQUESTS = _slice("bad-requests", "bad requests get clean 4xx errors (KI-005 fails this on every model)",
                      "--tags=@server", "-n", "Bad requests to")
CONCURRENCY = _slice("concurrency", "four simultaneous golden requests",
                     "--tags=@server", "-n", "Four simultaneous requests")
DISCONNECT = _slice("disconnect", "a streaming client hangs up, then a new request",
                    "--tags=@server", "-n", "recovers when a streaming client hangs up")
STREAM_PARITY = _slice("stream-parity", "streamed vs batch chat answers: same text, comparable time",
                       "--tags=@parity", "-n", "A streamed chat answer from")
SPEED = _slice("speed", "the speed scenario with a floor of 20 tokens/s (the demo model streams hundreds)",
               "--tags=@performance", "-D", "min_tokens_per_s=20")
CLI_ANSWERS = _slice("cli-answers", "mlxk run: plain, golden, --json, --max-tokens",
                     "--tags=@cli", "-n", "A prompt on the command line gets a clean answer|"
                     "The command line gives the golden answer|Machine-readable output|"
                     "A token limit on the command line")
CLI_ERRORS = _slice("cli-errors", "mlxk run on an unknown model, plain and --json", "--tags=@cli", "-n", "An unknown model")
CLI_TIMEOUT = _slice("cli-timeout", "one mlxk run with a 10 s CLI timeout",
                     "--tags=@cli", "-n", "A prompt on the command line gets a clean answer", "-D", "cli_timeout=10")

REQUEST_TIMEOUT = 5.0  # as in API_TIMEOUTS
CLI_TIMEOUT_S = 10.0  # as in CLI_TIMEOUT
SLACK = 5.0  # a hung exchange must fail its scenario within its timeout + this


@dataclass(frozen=True)
class Fault:
    name: str
    bug_class: str
    does: str
    selection: Selection
    catches: tuple[str, ...]  # scenario name fragments, any of which must fail unexpectedly
    max_seconds: float | None = None  # bound on the catching scenario's duration (hangs)
    masked_by: str | None = None  # a registered known issue that swallows the failure
    missing_check: str | None = None  # what the suite would need to catch it

    @property
    def expected_caught(self) -> bool:
        return self.masked_by is None and self.missing_check is None


CATALOGUE: tuple[Fault, ...] = (
    # --- end tokens, multi-eos -----------------------------------------------------------
    Fault("batch-end-token", "end-token leak",
          "batch chat answers end with the model's end token (<end_of_turn>); streams are clean",
          API, ("A chat answer from",)),
    Fault("stream-end-token", "end-token leak",
          "chat streams send the end token as one more content chunk before the finish chunk; batch is clean",
          API, ("A streamed chat answer from",)),
    Fault("completion-end-token", "end-token leak",
          "/v1/completions batch text ends with the end token",
          API, ("A text completion from",)),
    Fault("batch-runs-on", "multi-eos",
          "batch chat answers run past the end token into the next turn (\"...<end_of_turn>\\nuser\\n...\"), "
          "finish_reason length", GOLDEN, ("gives its golden chat answers",)),
    # --- SSE framing and envelope --------------------------------------------------------
    Fault("stream-no-done", "missing [DONE]", "streams end without `data: [DONE]`",
          API, ("A streamed chat answer from", "A streamed text completion from")),
    Fault("stream-json-content-type", "content type", "streams are sent as Content-Type application/json",
          API, ("A streamed chat answer from", "A streamed text completion from")),
    Fault("sse-merged", "SSE framing", "the first two content events of a chat stream have no blank line between them",
          API, ("A streamed chat answer from",)),
    Fault("stream-id-changes", "SSE framing (chunk envelope)", "chat chunks from the third on carry a different id",
          API, ("A streamed chat answer from",)),
    Fault("stream-no-role", "SSE framing (chunk envelope)", "the first chat chunk's delta has no role",
          API, ("A streamed chat answer from",)),
    Fault("chunk-object-name", "object names", "chat chunks say object \"chat.completion\" (not .chunk)",
          API, ("A streamed chat answer from",)),
    Fault("object-chat-completions", "object names", "batch chat answers say object \"chat.completions\"",
          API, ("A chat answer from",)),
    # --- finish_reason, usage ------------------------------------------------------------
    Fault("stream-finish-never-set", "finish_reason", "no stream chunk ever carries a finish_reason (all null)",
          API, ("A streamed chat answer from", "A streamed text completion from")),
    Fault("batch-finish-missing", "finish_reason", "batch chat answers have no finish_reason key",
          API, ("A chat answer from",)),
    Fault("stream-finish-empty", "finish_reason", "stream chunks carry finish_reason \"\" instead of null",
          API, ("A streamed chat answer from", "A streamed text completion from")),
    Fault("finish-stop-at-length", "finish_reason", "finish_reason is \"stop\" even when max_tokens cut the answer",
          TOKEN_LIMIT, ("A token limit below the natural length",)),
    Fault("usage-total-wrong", "usage", "batch usage.total_tokens is prompt + completion + 1",
          API, ("A chat answer from", "A text completion from")),
    Fault("usage-every-chunk", "usage", "every stream chunk carries a usage object, though none was asked for",
          API, ("A streamed chat answer from", "A streamed text completion from")),
    # --- text integrity ------------------------------------------------------------------
    Fault("stream-drop-last-token", "stream/batch divergence",
          "chat streams never send the last content chunk; batch is whole",
          GOLDEN, ("streams its golden chat answers intact",)),
    Fault("stream-replacement-char", "UTF-8 split",
          "one character of a streamed chat chunk arrives as U+FFFD; batch is whole (shown on gemma-style: "
          "utf8-style's streams already fail with KI-006)",
          GOLDEN, ("streams its golden chat answers intact",)),
    Fault("batch-utf8-fffd", "UTF-8 split",
          "batch chat answers show every multibyte character as one U+FFFD per byte; streams untouched",
          GOLDEN_UTF8, ("gives its golden chat answers",)),
    # --- stop strings (KI-004 covers both scenarios by name, on every model) --------------
    Fault("batch-stop-not-stripped", "stop sequence",
          "batch answers with `stop` are cut after the stop string, which stays visible; streams unchanged",
          STOP, ("A stop string cuts",)),
    Fault("stop-list-order", "stop ordering",
          "a list of stop strings is cut at the first listed one found, not the earliest (batch)",
          STOP, ("A list of stop strings cuts",)),
    # --- error handling (KI-005 covers the whole bad-request table, on every model) -------
    Fault("unknown-model-500", "unknown model / error handling", "an unknown model is answered 500, not 404",
          BAD_REQUESTS, ("Bad requests to",)),
    Fault("error-body-not-json", "error handling", "every 4xx/5xx body is the plain text 'Bad Request'",
          BAD_REQUESTS, ("Bad requests to",)),
    Fault("malformed-json-200", "error handling / validation gaps",
          "a malformed JSON body is answered 200 with a chat completion", BAD_REQUESTS, ("Bad requests to",)),
    # --- hangs, concurrency, disconnects -------------------------------------------------
    Fault("stream-hang-midway", "hang", "after three events a stream stops; the socket stays open",
          API_TIMEOUTS, ("A streamed chat answer from", "A streamed text completion from"),
          max_seconds=REQUEST_TIMEOUT + SLACK),
    Fault("no-headers", "hang", "chat completions are accepted and never answered (no status line); "
          "/health stays 200", API_TIMEOUTS, ("A chat answer from", "A streamed chat answer from"),
          max_seconds=REQUEST_TIMEOUT + SLACK),
    Fault("concurrent-swap", "concurrency", "two chat answers ready while both requests are in flight "
          "are handed to each other's client", CONCURRENCY, ("Four simultaneous requests",)),
    Fault("broken-after-disconnect", "disconnect", "after a streaming client hangs up mid-stream, every "
          "later request is answered 500", DISCONNECT, ("recovers when a streaming client hangs up",)),
    Fault("models-missing", "/v1/models", "GET /v1/models lists the other cached models but not the served one",
          API, ("is healthy and lists its model",)),
    Fault("slow-stream", "speed", "every stream event is held back 0.5 s (streaming many times slower than batch)",
          STREAM_PARITY, ("A streamed chat answer from",)),
    Fault("slow-decode", "speed", "batch and stream alike deliver ~10 tokens/s (every token held back 0.1 s)",
          SPEED, ("The speed of",)),
    # --- command line ----------------------------------------------------------------------
    Fault("cli-exit-0-on-error", "CLI exit code", "`mlxk run` exits 0 whatever happened",
          CLI_ERRORS, ("An unknown model fails with exit code 1", "An unknown model with --json")),
    Fault("cli-json-success-on-error", "CLI exit code", "`mlxk run --json` says status success on an error "
          "(exit code kept)", CLI_ERRORS, ("An unknown model with --json",)),
    Fault("cli-end-token", "end-token leak", "`mlxk run` prints the end token after the answer (plain output only)",
          CLI_ANSWERS, ("A prompt on the command line gets a clean answer",)),
    Fault("cli-json-end-token", "end-token leak", "`mlxk run --json` response ends with the end token",
          CLI_ANSWERS, ("Machine-readable output",)),
    Fault("cli-json-banner", "CLI output hygiene", "`mlxk run --json` prints a banner line before the JSON document",
          CLI_ANSWERS, ("Machine-readable output", "A token limit on the command line")),
    Fault("cli-finish-stop-at-length", "finish_reason", "`mlxk run --json --max-tokens` says finish_reason stop "
          "when the limit cut the answer", CLI_ANSWERS, ("A token limit on the command line",)),
    Fault("cli-answer-truncated", "stream/batch divergence", "`mlxk run` loses the answer's last character "
          "(plain output only)", CLI_ANSWERS,
          ("The command line gives the golden answer", "Machine-readable output")),
    Fault("cli-hang", "hang", "`mlxk run` never ends", CLI_TIMEOUT,
          ("A prompt on the command line gets a clean answer",), max_seconds=CLI_TIMEOUT_S + SLACK),
)

BY_NAME = {f.name: f for f in CATALOGUE}
SELECTIONS: tuple[Selection, ...] = tuple(dict.fromkeys(f.selection for f in CATALOGUE))
