"""Suite settings from behave userdata (``-D key=value``), validated before any model is touched."""

from __future__ import annotations

import math
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Mapping

from .cli_runner import run_cli
from .errors import ConfigError


def default_mlxk() -> tuple[str, ...]:
    """The mlxk beside the running Python (the suite's venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "mlxk"
    if beside.exists():
        return (str(beside),)
    return (shutil.which("mlxk") or "mlxk",)


@dataclass(frozen=True)
class Thresholds:
    """Optional speed floors for the @performance scenario (-D max_ttft_s, -D min_tokens_per_s)."""

    max_ttft_s: float | None = None
    min_tokens_per_s: float | None = None

    @property
    def given(self) -> bool:
        return self.max_ttft_s is not None or self.min_tokens_per_s is not None

    def describe(self) -> str:
        parts = [f"time to first token <= {self.max_ttft_s:g} s" if self.max_ttft_s is not None else "",
                 f">= {self.min_tokens_per_s:g} tokens/s" if self.min_tokens_per_s is not None else ""]
        return ", ".join(p for p in parts if p) or "none given"


# The systems the suite can test (support/targets.py): mlx-knife, mlx-lm's own server and CLI, and
# mlx-openai-server.
TARGETS = ("mlxk", "mlx_lm", "mlx_openai_server")


@dataclass(frozen=True)
class Settings:
    """One run's configuration; hf_home None means the demo portfolio."""

    hf_home: Path | None = None
    target: str = "mlxk"
    mlxk: tuple[str, ...] = field(default_factory=default_mlxk)
    mlx_lm: Path | None = None  # a venv, its bin folder or an executable in it; None: the suite's venv
    mlx_openai_server: Path | None = None  # likewise; None: .cache/venvs/mlx-openai-server-VERSION
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_models: int | None = None
    ram_budget_gb: float | None = None
    shard: tuple[int, int] | None = None
    startup_timeout: float = 120.0
    request_timeout: float = 60.0
    stream_timeout: float = 60.0
    cli_timeout: float = 120.0
    server_reuse: bool = True
    max_ttft_s: float | None = None
    min_tokens_per_s: float | None = None
    # @load (features/load.feature): the workload per chat model, and what it may show
    load_requests: int = 40
    load_clients: int = 3
    load_seconds: float = 2.5
    load_rss_growth_mb: float = 64.0
    load_slowdown_factor: float = 3.0

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.max_ttft_s, self.min_tokens_per_s)


KNOWN_KEYS = frozenset(f.name for f in fields(Settings))


def shown(value: str) -> str:
    """A value as one printable line (repr when it holds a newline or control character)."""
    return value if value.isprintable() else repr(value)


def last_line(text: str, limit: int = 200) -> str:
    """The last non-blank line of a program's output, cut to limit characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return shown(lines[-1][:limit]) if lines else "(no output)"


def _bad(key: str, value: str, expected: str) -> ConfigError:
    return ConfigError(f"-D {key}={shown(value)}: expected {expected}")


def _command(key: str, value: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(value))
    except ValueError:
        raise _bad(key, value, "a command line, e.g. -D mlxk=/path/to/mlxk") from None


def _target(key: str, value: str) -> str:
    if value not in TARGETS:
        raise _bad(key, value, f"one of {', '.join(TARGETS)}")
    return value


def _path(key: str, value: str) -> Path:
    path = Path(value).expanduser().absolute()
    if not path.exists():
        raise _bad(key, value, "an existing venv, bin folder or executable")
    return path


def _patterns(key: str, value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _whole(key: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise _bad(key, value, f"a whole number >= 1, e.g. -D {key}=3")
    return number


def _positive(unit: str) -> Callable[[str, str], float]:
    def parse(key: str, value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise _bad(key, value, f"a number of {unit} > 0")
        return number
    return parse


def _shard(key: str, value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)\s*/\s*(\d+)", value)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise _bad(key, value, f"i/n with 1 <= i <= n, e.g. -D {key}=1/4")
    return int(match[1]), int(match[2])


_SWITCH = {"on": True, "true": True, "yes": True, "1": True,
           "off": False, "false": False, "no": False, "0": False}


def _switch(key: str, value: str) -> bool:
    if value.lower() not in _SWITCH:
        raise _bad(key, value, "on or off (also true/false, yes/no, 1/0)")
    return _SWITCH[value.lower()]


_PARSERS: dict[str, Callable[[str, str], object]] = {
    "target": _target, "mlx_lm": _path, "mlx_openai_server": _path, "mlxk": _command, "include": _patterns,
    "exclude": _patterns, "max_models": _whole,
    "ram_budget_gb": _positive("GB"), "shard": _shard, "startup_timeout": _positive("seconds"),
    "request_timeout": _positive("seconds"), "stream_timeout": _positive("seconds"),
    "cli_timeout": _positive("seconds"), "server_reuse": _switch,
    "max_ttft_s": _positive("seconds"),
    "min_tokens_per_s": _positive("tokens per second"),
    "load_requests": _whole, "load_clients": _whole, "load_seconds": _positive("seconds"),
    "load_rss_growth_mb": _positive("MiB"), "load_slowdown_factor": _positive("times"),
}


def _hf_home(userdata_value: str, environ_value: str) -> Path | None:
    value, source = (userdata_value, "-D hf_home") if userdata_value else (environ_value, "HF_HOME")
    if not value:
        return None
    path = Path(value).expanduser().absolute()
    fix = ("set HF_HOME or -D hf_home=DIR to a Hugging Face cache, "
           "or unset both to use the demo portfolio")
    if not path.exists():
        raise ConfigError(f"hf_home {shown(str(path))} (from {source}) does not exist: {fix}")
    if not path.is_dir():
        raise ConfigError(f"hf_home {shown(str(path))} (from {source}) is not a directory: {fix}")
    return path


def load_settings(userdata: Mapping[str, str], environ: Mapping[str, str]) -> Settings:
    """Validated settings; an empty value counts as not given. Dotted keys belong to formatters."""
    known = KNOWN_KEYS
    for key in sorted(userdata):
        if "." not in key and key not in known:
            raise ConfigError(f"unknown setting -D {shown(key)}={shown(str(userdata[key]))}; "
                              f"known settings: {', '.join(sorted(known))}")
    values: dict[str, object] = {}
    for key, parse in _PARSERS.items():
        raw = str(userdata.get(key, "")).strip()
        if raw:
            values[key] = parse(key, raw)
    if values.get("mlxk") == ():
        del values["mlxk"]
    values["hf_home"] = _hf_home(str(userdata.get("hf_home", "")).strip(),
                                 str(environ.get("HF_HOME", "")).strip())
    return Settings(**values)  # type: ignore[arg-type]


def check_mlxk(cmd: tuple[str, ...], timeout: float = 30) -> str:
    """The stripped output of ``cmd --version``; ConfigError when the command does not run."""
    def fail(why: str) -> ConfigError:
        return ConfigError(f"-D mlxk={shown(shlex.join(cmd))} does not run ({why}): "
                           "point -D mlxk at an mlx-knife executable")

    if not cmd:
        raise fail("empty command")
    try:
        result = run_cli(cmd, ("--version",), None, timeout)
    except OSError as e:
        raise fail(e.strerror or str(e)) from None
    if result.timed_out:
        raise fail(f"no answer to --version within {timeout:g} s")
    if result.returncode != 0:
        raise fail(f"--version exited {result.returncode}: {last_line(result.stderr)}")
    return result.stdout.strip()


_VERSION = re.compile(r"\d+(?:\.\d+)+(?:[.-]?[A-Za-z]+\d*)*")


def parse_sut_version(text: str) -> str:
    """The version number in ``mlxk --version`` output, e.g. "2.0.8" from "mlxk 2.0.8"."""
    match = _VERSION.search(text)
    if match is None:
        raise ConfigError(f"mlxk --version printed {text[:120]!r}, expected e.g. 'mlxk 2.0.8': "
                          "point -D mlxk at an mlx-knife executable")
    return match[0]
