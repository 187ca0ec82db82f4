"""The target seam: how the system under test's server and command line are started and addressed.

A target knows its own commands; the driver (support/driver.py) asks it for a server of a model
and for the argument list of a command-line question, and never spells a SUT command itself.
Three targets (`-D target=...`):

* ``mlxk``: mlx-knife (`mlxk serve`, `mlxk run`; `mlxk embed-serve`, `mlxk embed` and the
  `serve --embed-backend` proxy for embeddings), the default;
* ``mlx_lm``: mlx-lm's own server and command line (`mlx_lm.server --model M`, `mlx_lm.generate`);
* ``mlx_openai_server``: mlx-openai-server's `launch --model-path M --model-type lm` (a server alone:
  no command line, no text completions), from its own venv (support/openai_server_venv.py).

A target declares what it ``lacks`` (keys of FEATURES): a scenario tagged ``@needs.<feature>``
for a lacking feature is skipped with the reason (support/hooks.py), never passed; asking a target
for what it lacks raises NotOffered, a harness error that names the missing tag. Another server is
one more class with the same members (see the README, "Adding a target").
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from .cli_runner import run_cli, sut_env
from .config import TARGETS, check_mlxk, parse_sut_version
from .errors import ConfigError, HarnessError
from .openai_server_venv import VENVS as OPENAI_SERVER_VENVS, VERSION as OPENAI_SERVER_VERSION
from .server_process import LocalServer

EMBED_SERVE = "embed-serve"  # server kinds of the pool (support/server_pool.py) besides "serve"
PROXY = "serve --embed-backend "  # + the backend's base URL
# mlx-knife 2.0.8 gates experimental commands behind environment flags.
FEATURE_FLAGS = {"embeddings": "MLXK2_ENABLE_ALPHA_FEATURES", "pipes": "MLXK2_ENABLE_PIPES"}


# What a target may lack, as a skipped scenario's reason says it ("@needs.<key>" in the spec).
FEATURES = {
    "cli_json": "machine-readable (--json) command-line output",
    "listing": "a command that lists the cached models",
    "model_card": "a command that shows one cached model",
    "cli_no_stream": "a command-line switch between streamed and one-piece output (--no-stream)",
    "cli_repetition_penalty": "a repetition penalty option on the command line",
    "embeddings": "embeddings (command line and server)",
    "vision": "questions about images",
    "speech": "transcribing and translating sound files",
    "cli": "a command line that answers a prompt",
    "text_completions": "text completions (POST /v1/completions)",
}
NEEDS_TAG_PREFIX = "needs."


class NotOffered(HarnessError):
    """The suite asked a target for a feature it lacks: the scenario misses its @needs tag."""

    def __init__(self, target: str, feature: str) -> None:
        super().__init__(f"target {target} does not offer {FEATURES[feature]}: "
                         f"tag the scenario @{NEEDS_TAG_PREFIX}{feature} so that it is skipped")
        self.feature = feature


def require(target, feature: str) -> None:
    """NotOffered when the target lacks ``feature``: for actions the driver takes on any target's
    server (a text completion), where no target method would raise it."""
    if feature in target.lacks:
        raise NotOffered(target.name, feature)


def needed_features(tags) -> list[str]:
    """The features a scenario's tags (effective tags: inherited ones count) say it needs; an
    unknown feature name is a mistake in the spec (ConfigError)."""
    needed = sorted({t.lstrip("@")[len(NEEDS_TAG_PREFIX):] for t in tags
                     if t.lstrip("@").startswith(NEEDS_TAG_PREFIX)})
    unknown = [f for f in needed if f not in FEATURES]
    if unknown:
        raise ConfigError(f"unknown @{NEEDS_TAG_PREFIX}{unknown[0]} (known: "
                          + ", ".join(f"@{NEEDS_TAG_PREFIX}{k}" for k in FEATURES) + ")")
    return needed


def not_offered_reason(target, tags) -> str | None:
    """Why a scenario with these tags cannot run on the target (None: it can)."""
    missing = [f for f in needed_features(tags) if f in target.lacks]
    if not missing:
        return None
    return f"not offered by target {target.name} {target.version}: " + "; ".join(FEATURES[f] for f in missing)


@dataclass(frozen=True)
class MlxKnife:
    """mlx-knife: `mlxk serve --model M` per model, `mlxk run M PROMPT` on the command line."""

    command: tuple[str, ...]
    hf_home: Path
    name: str = "mlxk"
    version: str = ""
    title: str = "mlx-knife"
    lacks: frozenset[str] = frozenset()
    discovery: str = "mlxk list --json"  # its own listing is the source of the portfolio
    startup_measures: str = "start to GET /health answering 200 (the model is loaded by then)"

    def request_model(self, model_id: str) -> str:
        """The model's name in an OpenAI request."""
        return model_id

    def list_args(self) -> tuple[str, ...]:
        return ("list", "--json")

    def show_args(self, model_id: str) -> tuple[str, ...]:
        return ("show", model_id, "--json")

    def server(self, model_id: str, log_dir: Path, startup_timeout: float) -> LocalServer:
        """An unstarted server for one model (the pool starts, reuses and stops it)."""
        return LocalServer(model_id, self.command, sut_env(self.hf_home), log_dir, startup_timeout)

    def env(self, *features: str, without: tuple[str, ...] = ()) -> dict[str, str | None]:
        """Environment changes for a SUT process using ``features`` ("embeddings", "pipes"), and
        with the flags of ``without`` removed (a user who forgot one)."""
        return {**{FEATURE_FLAGS[f]: "1" for f in features}, **{FEATURE_FLAGS[f]: None for f in without}}

    def embed_server(self, model_id: str, log_dir: Path, startup_timeout: float) -> LocalServer:
        """An unstarted `mlxk embed-serve MODEL` (the embeddings backend) for one embedding model."""
        return LocalServer(model_id, self.command, sut_env(self.hf_home, self.env("embeddings")), log_dir,
                           startup_timeout, args=("embed-serve", model_id))

    def proxy_server(self, chat_model: str, backend_url: str, log_dir: Path, startup_timeout: float) -> LocalServer:
        """An unstarted `mlxk serve --model CHAT --embed-backend URL`: chat here, embeddings proxied."""
        return LocalServer(chat_model, self.command, sut_env(self.hf_home, self.env("embeddings")), log_dir,
                           startup_timeout, args=("serve", "--model", chat_model, "--embed-backend", backend_url))

    def kind_server(self, kind: str, model_id: str, log_dir: Path, startup_timeout: float) -> LocalServer:
        """A server of a pool kind other than "serve": EMBED_SERVE, or PROXY + backend URL."""
        if kind == EMBED_SERVE:
            return self.embed_server(model_id, log_dir, startup_timeout)
        if kind.startswith(PROXY):
            return self.proxy_server(model_id, kind[len(PROXY):], log_dir, startup_timeout)
        raise ValueError(f"{self.name} has no server of kind {kind!r}")

    def embed_args(self, model_id: str, text: str | None, *flags: str) -> tuple[str, ...]:
        """`mlxk embed` arguments: one text as an argument, "-" for stdin, None with --batch."""
        return ("embed", model_id, *(() if text is None else (text,)), *flags)

    def ask_args(self, model_id: str, prompt: str | None, sampling: dict, *flags: str) -> tuple[str, ...]:
        """`mlxk run` arguments for one prompt (None: no prompt) with the given sampling."""
        options = {"temperature": "--temperature", "top_p": "--top-p",
                   "repetition_penalty": "--repetition-penalty", "max_tokens": "--max-tokens"}
        unknown = sorted(set(sampling) - set(options))
        if unknown:
            raise ValueError(f"mlxk run has no option for {unknown}")
        args = [str(a) for key, value in sampling.items() for a in (options[key], value)]
        return ("run", model_id, *(() if prompt is None else (prompt,)), *args, *flags)

    def image_flags(self, paths: list[str], chunk: int | None) -> tuple[str, ...]:
        """`mlxk run` flags for a question about image files (and images per model call)."""
        return ("--image", *paths, *(("--chunk", str(chunk)) if chunk else ()))

    def audio_flags(self, path: str, language: str | None, translate: bool) -> tuple[str, ...]:
        """`mlxk run` flags for a sound file to transcribe (in `language`) or translate to English."""
        return ("--audio", path, *(("--language", language) if language else ()),
                *(("--translate",) if translate else ()))


def ask_python(python: Path, code: str, what: str, timeout: float = 60) -> str:
    """What ``python -c CODE`` prints (stripped); ConfigError saying ``what`` failed otherwise."""
    result = run_cli((str(python),), ("-c", code), None, timeout)
    if result.returncode != 0 or not result.stdout.strip():
        raise ConfigError(f"cannot {what} with {python} (exit {result.returncode}): {result.stderr.strip()[-200:]}")
    return result.stdout.strip()


def mlx_lm_model_types(python: Path, timeout: float = 60) -> frozenset[str]:
    """The model_type values the mlx-lm of ``python`` can load (its models package and its remapping)."""
    code = ("import pkgutil, mlx_lm.models as m, mlx_lm.utils as u; "
            "print(' '.join([n.name for n in pkgutil.iter_modules(m.__path__)] + "
            "[k for k, v in u.MODEL_REMAPPING.items()]))")
    return frozenset(ask_python(python, code, "ask mlx_lm for its model types", timeout).split())


def locate_bin(option: str, path: Path | None, default: Path, needed: tuple[str, ...], fix: str) -> Path:
    """The bin folder of a venv, of a bin folder or beside an executable (``default`` when not given),
    holding every name of ``needed``; ConfigError naming what is missing and ``fix`` otherwise."""
    given = Path(path).expanduser().absolute() if path is not None else default
    bin_dir = given.parent if given.is_file() else given / "bin" if (given / "bin").is_dir() else given
    missing = [n for n in needed if not (bin_dir / n).exists()]
    if missing:
        raise ConfigError(f"-D {option}={given}: no {', '.join(missing)} in {bin_dir}: {fix}")
    return bin_dir


class TextOnly:
    """The members of a target without embeddings, vision, speech, a listing or a model card: each
    raises NotOffered (a harness error naming the missing @needs tag). Its server and command line
    need no feature flags."""

    name: str

    def env(self, *features: str, without: tuple[str, ...] = ()) -> dict[str, str | None]:
        """No feature flags: pipes (a prompt on stdin) need none; embeddings are not offered."""
        if "embeddings" in features or "embeddings" in without:
            raise NotOffered(self.name, "embeddings")
        return {}

    def kind_server(self, kind: str, model_id: str, log_dir: Path, startup_timeout: float) -> LocalServer:
        raise NotOffered(self.name, "embeddings")

    def embed_args(self, model_id: str, text: str | None, *flags: str) -> tuple[str, ...]:
        raise NotOffered(self.name, "embeddings")

    def image_flags(self, paths: list[str], chunk: int | None) -> tuple[str, ...]:
        raise NotOffered(self.name, "vision")

    def audio_flags(self, path: str, language: str | None, translate: bool) -> tuple[str, ...]:
        raise NotOffered(self.name, "speech")

    def list_args(self) -> tuple[str, ...]:
        raise NotOffered(self.name, "listing")

    def show_args(self, model_id: str) -> tuple[str, ...]:
        raise NotOffered(self.name, "model_card")


# mlx_lm.server answers /health before its model is loaded: readiness is a first real answer.
FIRST_ANSWER_PROMPT = "Hello"


@dataclass(frozen=True)
class MlxLm(TextOnly):
    """mlx-lm: `mlx_lm.server --model M` per model, `mlx_lm.generate --model M --prompt P` on the
    command line (`--verbose False`: the answer alone, then a newline)."""

    bin_dir: Path  # holds mlx_lm.server, mlx_lm.generate and the python they run on
    hf_home: Path
    name: str = "mlx_lm"
    version: str = ""
    title: str = "mlx-lm"
    lacks: frozenset[str] = frozenset({"cli_json", "listing", "model_card", "cli_no_stream",
                                       "cli_repetition_penalty", "embeddings", "vision", "speech"})
    discovery: str = ("huggingface_hub.scan_cache_dir (mlx_lm has no listing command), "
                      "with the suite's health, framework and capability rules")
    startup_measures: str = ("start to the first answer of POST /v1/completions (max_tokens 1): "
                             "mlx_lm.server answers /health before its model is loaded")

    @classmethod
    def locate(cls, path: Path | None, hf_home: Path) -> "MlxLm":
        """The mlx-lm of a venv, a bin folder or beside an executable (default: the suite's venv)."""
        bin_dir = locate_bin("mlx_lm", path, Path(sys.executable).parent,
                             ("mlx_lm.server", "mlx_lm.generate", "python"),
                             "point -D mlx_lm at a venv (or its bin folder) with mlx-lm installed")
        return cls(bin_dir, hf_home)

    @property
    def command(self) -> tuple[str, ...]:
        """The command line (`mlx_lm.generate`)."""
        return (str(self.bin_dir / "mlx_lm.generate"),)

    def probe_version(self, timeout: float = 60) -> str:
        """mlx-lm's version, asked of the Python its commands run on."""
        return ask_python(self.bin_dir / "python", "import mlx_lm; print(mlx_lm.__version__)", "import mlx_lm",
                          timeout)

    def model_types(self, timeout: float = 60) -> frozenset[str]:
        """The model_type values mlx-lm can load (its models package and its remapping)."""
        return mlx_lm_model_types(self.bin_dir / "python", timeout)

    def request_model(self, model_id: str) -> str:
        return model_id

    def server(self, model_id: str, log_dir: Path, startup_timeout: float) -> LocalServer:
        first = ("/v1/completions", {"model": self.request_model(model_id), "prompt": FIRST_ANSWER_PROMPT,
                                     "max_tokens": 1, "temperature": 0})
        return LocalServer(model_id, (str(self.bin_dir / "mlx_lm.server"),), sut_env(self.hf_home), log_dir,
                           startup_timeout, args=("--model", model_id), name="mlx_lm.server", first_answer=first)

    def ask_args(self, model_id: str, prompt: str | None, sampling: dict, *flags: str) -> tuple[str, ...]:
        """`mlx_lm.generate` arguments; None: no --prompt (mlx-lm then uses its default prompt)."""
        for flag, feature in (("--json", "cli_json"), ("--no-stream", "cli_no_stream")):
            if flag in flags:
                raise NotOffered(self.name, feature)
        if flags:
            raise ValueError(f"mlx_lm.generate: no flag for {flags}")
        sampling = dict(sampling)
        if sampling.pop("repetition_penalty", 1.0) != 1.0:  # 1.0 is no penalty: the default
            raise NotOffered(self.name, "cli_repetition_penalty")
        options = {"temperature": "--temp", "top_p": "--top-p", "max_tokens": "--max-tokens"}
        unknown = sorted(set(sampling) - set(options))
        if unknown:
            raise ValueError(f"mlx_lm.generate has no option for {unknown}")
        args = [str(a) for key, value in sampling.items() for a in (options[key], value)]
        return ("--model", model_id, *(() if prompt is None else ("--prompt", prompt)), *args,
                "--verbose", "False")


# What a target without a command line answers when the suite asks it for its CLI's arguments.
NO_CLI = ("cli_json", "listing", "model_card", "cli_no_stream", "cli_repetition_penalty", "cli")


@dataclass(frozen=True)
class MlxOpenAIServer(TextOnly):
    """mlx-openai-server: `mlx-openai-server launch --model-path M --model-type lm` per model, a
    server alone (no command line, no /v1/completions). Its venv has the text-model path only
    (support/openai_server_venv.py), so its embeddings, multimodal and whisper model types are
    not set up here: lacking. /health answers 503 until the model is loaded (its lifespan loads it
    before uvicorn listens), so health is readiness; /v1/models names the model by --model-path."""

    bin_dir: Path  # holds mlx-openai-server and the python it runs on
    hf_home: Path
    name: str = "mlx_openai_server"
    version: str = ""
    title: str = "mlx-openai-server"
    lacks: frozenset[str] = frozenset({*NO_CLI, "text_completions", "embeddings", "vision", "speech"})
    discovery: str = ("huggingface_hub.scan_cache_dir (mlx-openai-server has no listing command), "
                      "with the suite's health, framework and capability rules")
    startup_measures: str = ("start to GET /health answering 200: mlx-openai-server answers 503 until its "
                             "model is loaded")

    @classmethod
    def locate(cls, path: Path | None, hf_home: Path) -> "MlxOpenAIServer":
        """The mlx-openai-server of a venv, a bin folder or beside an executable (default: the
        suite's cached venv, `python -m support.openai_server_venv`)."""
        default = OPENAI_SERVER_VENVS / f"mlx-openai-server-{OPENAI_SERVER_VERSION}"
        bin_dir = locate_bin("mlx_openai_server", path, default,
                             ("mlx-openai-server", "python"), "make the venv with `python -m "
                             "support.openai_server_venv`, or point -D mlx_openai_server at one")
        return cls(bin_dir, hf_home)

    @property
    def command(self) -> tuple[str, ...]:
        """The server's executable (the target has no command line; messages name it)."""
        return (str(self.bin_dir / "mlx-openai-server"),)

    def probe_version(self, timeout: float = 60) -> str:
        code = "from importlib.metadata import version; print(version('mlx-openai-server'))"
        return ask_python(self.bin_dir / "python", code, "ask for the version of mlx-openai-server", timeout)

    def model_types(self, timeout: float = 60) -> frozenset[str]:
        """The model_type values its LM path loads: mlx-lm's, as installed beside it."""
        return mlx_lm_model_types(self.bin_dir / "python", timeout)

    def request_model(self, model_id: str) -> str:
        return model_id  # --model-path M: /v1/models lists M and requests name it

    def server(self, model_id: str, log_dir: Path, startup_timeout: float) -> LocalServer:
        args = ("launch", "--model-path", model_id, "--model-type", "lm", "--no-log-file")  # no logs/app.log in cwd
        return LocalServer(model_id, self.command, sut_env(self.hf_home), log_dir, startup_timeout, args=args,
                           name="mlx-openai-server launch")

    def ask_args(self, model_id: str, prompt: str | None, sampling: dict, *flags: str) -> tuple[str, ...]:
        raise NotOffered(self.name, "cli")


def make_target(settings, hf_home: Path):
    """The target of the run's settings (-D target, -D mlxk, -D mlx_lm, -D mlx_openai_server), its
    version probed."""
    assert settings.target in TARGETS, settings.target
    if settings.target in ("mlx_lm", "mlx_openai_server"):
        kind, path = (MlxLm, settings.mlx_lm) if settings.target == "mlx_lm" else \
            (MlxOpenAIServer, settings.mlx_openai_server)
        target = kind.locate(path, hf_home)
        return replace(target, version=target.probe_version())
    return MlxKnife(settings.mlxk, hf_home, version=parse_sut_version(check_mlxk(settings.mlxk)))
