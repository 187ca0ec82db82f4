"""The target seam: how the system under test's server and command line are started and addressed.

A target knows its own commands; the driver (support/driver.py) asks it for a server of a model
and for the argument list of a command-line question, and never spells a SUT command itself.
Today one target: mlx-knife (`mlxk serve`, `mlxk run`; `mlxk embed-serve`, `mlxk embed` and the
`serve --embed-backend` proxy for embeddings). Another server is one more class with the same members.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .cli_runner import sut_env
from .server_process import LocalServer

EMBED_SERVE = "embed-serve"  # server kinds of the pool (support/server_pool.py) besides "serve"
PROXY = "serve --embed-backend "  # + the backend's base URL
# mlx-knife 2.0.8 gates experimental commands behind environment flags.
FEATURE_FLAGS = {"embeddings": "MLXK2_ENABLE_ALPHA_FEATURES", "pipes": "MLXK2_ENABLE_PIPES"}


@dataclass(frozen=True)
class MlxKnife:
    """mlx-knife: `mlxk serve --model M` per model, `mlxk run M PROMPT` on the command line."""

    command: tuple[str, ...]
    hf_home: Path
    name: str = "mlxk"

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
