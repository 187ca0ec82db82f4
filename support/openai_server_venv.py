"""mlx-openai-server in a cached venv of its own, over the suite venv's packages.

    .venv/bin/python -m support.openai_server_venv      (prints the venv; made once, then reused)

`pip install mlx-openai-server` fails on Linux: the release declares macOS-only and heavy
dependencies (mlx[cuda13] through mflux, torchvision, mlx-vlm<0.5, mlx-whisper, librosa, ...).
Its text-model path (`launch --model-type lm`: app.models.mlx_lm) needs far less, so the venv gets
the wheel with ``--no-deps`` and then exactly PINS: what that path imports and the suite's venv
lacks, and, where the suite's venv has a version outside the release's declared range, an
in-range version that shadows it (the venv's own site-packages come before the suite's on sys.path).
Found by starting it on a demo model until it served; each pin is within the declared range
(torch, which outlines' FSM imports, within the range its declared torchvision<0.30 implies).
torch is the CPU build: pip takes `torch==2.13.0+cpu` from the machine's wheel folder when it has
one (the PyPI build of it needs CUDA libraries); the install ends with an import check that says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Callable

from .errors import HarnessError
from .paths import ROOT

VERSION = "1.8.1"
VENVS = ROOT / ".cache" / "venvs"
STAMP = "mlx-e2e-install.json"
PIP_TIMEOUT = 1800
PINS = (
    # imported by app.cli and the LM handler, missing from the suite's venv
    "loguru==0.7.3", "openai-harmony==0.0.8", "dill==0.4.1", "xxhash==3.8.2",
    # outlines.processors (JSONLogitsProcessor, imported at load) and what its import pulls in
    "outlines==1.1.1", "outlines_core==0.1.26", "lark==1.3.1", "interegular==0.3.3", "cloudpickle==3.1.3",
    "diskcache==5.6.3", "airportsdata==20260905", "iso3166==3.0.0", "genson==1.4.0", "jsonpath-ng==1.16.0",
    "torch==2.13.0", "sympy==1.14.0", "mpmath==1.3.0",
    # the suite's venv has these outside mlx-openai-server 1.8.1's declared ranges: in-range versions
    # (and distro, which openai 2.x imports and the suite's openai 3.x does not need)
    "click==8.3.3", "fastapi==0.129.2", "starlette==0.52.1", "uvicorn==0.39.0", "numpy==2.3.5",
    "openai==2.54.0", "distro==1.9.0", "pillow==12.3.0", "rich==14.3.4", "python-multipart==0.0.24",
)
# What `launch --model-type lm` imports before it serves: the install is checked with it.
IMPORT_CHECK = "import torch, app.cli, app.models.mlx_lm, app.handler.mlx_lm; print(torch.__version__)"


def purelib(python: Path | str) -> str:
    """The site-packages folder of a Python."""
    if str(python) == sys.executable:
        return sysconfig.get_paths()["purelib"]
    return _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                "ask the venv for its site-packages", 60).strip()


def overlay_venv(venv: Path) -> Path:
    """A new venv at ``venv`` that also sees the suite venv's packages (a .pth line after its own
    site-packages); returns its python."""
    _run([sys.executable, "-m", "venv", str(venv)], f"python -m venv {venv}", 300)
    python = venv / "bin" / "python"
    Path(purelib(python), "suite-venv.pth").write_text(purelib(sys.executable) + "\n")
    return python


def mlx_openai_server_venv(version: str = VERSION, root: Path = VENVS,
                           log: Callable[[str], None] = print) -> Path:
    """ROOT/.cache/venvs/mlx-openai-server-VERSION with the server's text-model path installed
    (made once; a venv whose stamp names other pins is made anew)."""
    venv = root / f"mlx-openai-server-{version}"
    stamp = {"mlx-openai-server": version, "pins": list(PINS)}
    if (venv / "bin" / "mlx-openai-server").is_file() and (venv / STAMP).is_file() \
            and json.loads((venv / STAMP).read_text()) == stamp:
        return venv
    if version != VERSION:
        raise HarnessError(f"mlx-openai-server {version}: only {VERSION}'s text-path dependencies are known "
                           f"(support/openai_server_venv.py PINS); find that release's by starting it")
    started = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    python = overlay_venv(venv)
    _pip(python, "--no-deps", f"mlx-openai-server=={version}", *PINS)
    torch = _run([str(python), "-c", IMPORT_CHECK], f"mlx-openai-server {version} installed, but its text path "
                 "does not import (on Linux torch must be the CPU build, 2.13.0+cpu)", 300).strip()
    (venv / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    log(f"mlx-openai-server {version}: installed into {venv} in {time.monotonic() - started:.0f} s, "
        f"{_size_mb(venv):.0f} MB (torch {torch}, {len(PINS)} pinned dependencies)")
    return venv


def _pip(python: Path, *args: str) -> None:
    _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
         "pip install " + " ".join(args[:2]) + " ...", PIP_TIMEOUT)


def _run(argv: list[str], what: str, timeout: float) -> str:
    """Run ``argv``; its stdout, or HarnessError saying what failed with the command's last lines."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{what}: not finished within {timeout:g} s: {' '.join(argv)}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise HarnessError(f"{what}: exit {done.returncode}: {' '.join(argv)}\n{tail}")
    return done.stdout


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


if __name__ == "__main__":
    print(mlx_openai_server_venv(log=lambda line: print(f"mlx-e2e: {line}", file=sys.stderr)))
