"""The target seam: how the system under test's server and command line are started and addressed.

A target knows its own commands; the driver (support/driver.py) asks it for a server of a model
and for the argument list of a command-line question, and never spells a SUT command itself.
Today one target: mlx-knife (`mlxk serve`, `mlxk run`). Another server is one more class with
the same three members.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .cli_runner import sut_env
from .server_process import LocalServer


@dataclass(frozen=True)
class MlxKnife:
    """mlx-knife: `mlxk serve --model M` per model, `mlxk run M PROMPT` on the command line."""

    command: tuple[str, ...]
    hf_home: Path
    name: str = "mlxk"

    def server(self, model_id: str, log_dir: Path, startup_timeout: float) -> LocalServer:
        """An unstarted server for one model (the pool starts, reuses and stops it)."""
        return LocalServer(model_id, self.command, sut_env(self.hf_home), log_dir, startup_timeout)

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
