"""Releases of the system under test, each in its own cached venv (for `make compare` / `make matrix`).

A release is named by a PyPI version ("2.0.7"), a wheel file, or an `mlxk` command that is
already installed. A version or wheel is installed once into ``.cache/sut-venvs/<name>/`` with
the MLX stack that release itself declares (its wheel's ``Requires-Dist``, read with
``packaging``; on Linux ``mlx`` becomes ``mlx[cpu]``, the CPU backend, under the same version
bounds), and reused while its stamp (the wheel's sha256 and the install plan) is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .config import check_mlxk, parse_sut_version
from .errors import ConfigError, HarnessError
from .paths import ROOT

PACKAGE = "mlx-knife"
VENVS = ROOT / ".cache" / "sut-venvs"
STAMP = ".mlx-e2e-release.json"
PIP_TIMEOUT = 1800.0  # seconds for one pip download or install


@dataclass(frozen=True)
class Release:
    """One build to test: ``kind`` is "pypi" (``spec`` is its version), "wheel" or "command"."""

    spec: str
    kind: str

    @property
    def name(self) -> str:
        """A short name for reports and folders: the version, or the wheel's / command's file name."""
        if self.kind == "pypi":
            return self.spec
        if self.kind == "wheel":
            return Path(self.spec).name.split("-")[1]
        return Path(self.spec).parent.parent.name or Path(self.spec).name


def parse(spec: str) -> Release:
    """A release from what a person typed: a version, a path to a wheel, or a path to `mlxk`."""
    text = spec.strip()
    if text.endswith(".whl"):
        if not Path(text).is_file():
            raise ConfigError(f"release {text!r}: no such wheel file")
        return Release(str(Path(text).absolute()), "wheel")
    try:
        Version(text)
        if re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", text):
            return Release(text, "pypi")
    except InvalidVersion:
        pass
    path = Path(text).expanduser()
    if path.is_file():
        return Release(str(path.absolute()), "command")
    raise ConfigError(f"release {text!r} is neither a version of {PACKAGE} on PyPI (e.g. 2.0.7), "
                      "a wheel file (.whl) nor an mlxk executable")


def metadata_of(wheel: Path) -> Metadata:
    """The wheel's core metadata (its ``*.dist-info/METADATA``)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next((n for n in archive.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None)
        if name is None:
            raise ConfigError(f"{wheel}: not a wheel (no *.dist-info/METADATA)")
        return Metadata.from_email(archive.read(name), validate=False)


def install_plan(wheel: Path, metadata: Metadata, platform: str = sys.platform,
                 python: str = "{}.{}.{}".format(*sys.version_info[:3])) -> list[str]:
    """What pip installs for the release: the wheel, and on Linux mlx with its CPU backend within
    the bounds the release declares. ConfigError when the release does not accept this Python."""
    if metadata.requires_python is not None and not metadata.requires_python.contains(python):
        raise ConfigError(f"{metadata.name} {metadata.version} requires Python {metadata.requires_python}, "
                          f"this is {python}: run the suite with a Python it accepts")
    plan = [str(wheel)]
    for requirement in metadata.requires_dist or []:
        if requirement.marker is not None and "extra" in str(requirement.marker):
            continue
        if canonicalize_name(requirement.name) == "mlx" and platform.startswith("linux"):
            cpu = Requirement(str(requirement))
            cpu.extras = {*cpu.extras, "cpu"}
            plan.append(str(cpu))
    return plan


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pip(python: Path | str, args: list[str], what: str, run: Callable = subprocess.run) -> None:
    """``python -m pip ARGS``; HarnessError with pip's last lines when it fails."""
    command = [str(python), "-m", "pip", "--disable-pip-version-check", *args]
    try:
        done = run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{what}: pip did not finish within {PIP_TIMEOUT:g} s: {' '.join(command)}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-8:])
        raise HarnessError(f"{what}: pip exited {done.returncode}: {' '.join(command)}\n{tail}")


def wheel_of(release: Release, root: Path = VENVS, run: Callable = subprocess.run) -> Path:
    """The release's wheel: the given file, or downloaded once (``pip download --no-deps``)."""
    if release.kind == "wheel":
        return Path(release.spec)
    folder = root / "wheels"
    found = sorted(folder.glob(f"mlx_knife-{release.spec}-*.whl"))
    if not found:
        _pip(sys.executable, ["download", "--no-deps", "--quiet", "-d", str(folder),
                              f"{PACKAGE}=={release.spec}"], f"{PACKAGE} {release.spec}", run)
        found = sorted(folder.glob(f"mlx_knife-{release.spec}-*.whl"))
    if not found:
        raise HarnessError(f"pip download of {PACKAGE}=={release.spec} left no wheel in {folder}")
    return found[0]


def ensure(release: Release, root: Path = VENVS, log: Callable[[str], None] = print,
           run: Callable = subprocess.run) -> tuple[str, ...]:
    """The release's `mlxk` command, installing it into its own venv first when needed."""
    if release.kind == "command":
        return (release.spec,)
    wheel = wheel_of(release, root, run)
    metadata = metadata_of(wheel)
    plan = install_plan(wheel, metadata)
    digest = _sha256(wheel)
    venv = root / (f"{metadata.version}" if release.kind == "pypi" else f"{metadata.version}-{digest[:12]}")
    mlxk = venv / "bin" / "mlxk"
    stamp = {"release": release.spec, "wheel_sha256": digest,
             "plan": [Path(p).name if p == str(wheel) else p for p in plan]}
    stamp_path = venv / STAMP
    if mlxk.is_file() and stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        log(f"{PACKAGE} {metadata.version}: venv {venv} (cached)")
        return (str(mlxk),)
    started = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    done = run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise HarnessError(f"python -m venv {venv} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    _pip(venv / "bin" / "python", ["install", "--quiet", *plan], f"{PACKAGE} {metadata.version}", run)
    stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")
    log(f"{PACKAGE} {metadata.version}: installed into {venv} in {time.monotonic() - started:.0f} s "
        f"({', '.join(stamp['plan'])})")
    return (str(mlxk),)


def version_of(mlxk: tuple[str, ...]) -> str:
    """The version the release's `mlxk --version` reports."""
    return parse_sut_version(check_mlxk(mlxk, timeout=120))


def main(argv: list[str]) -> int:
    """``python -m support.releases SPEC...``: install each release, print its mlxk command."""
    for spec in argv:
        mlxk = ensure(parse(spec))
        print(f"{spec}: {' '.join(mlxk)} ({version_of(mlxk)})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
