"""Releases installed into their own cached venvs (support/releases.py), with a stand-in for pip."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from support import releases
from support.errors import ConfigError, HarnessError

METADATA = """Metadata-Version: 2.4
Name: mlx-knife
Version: {version}
Requires-Python: >=3.10
Requires-Dist: huggingface-hub>=1.0.0
Requires-Dist: mlx<0.32,>=0.30.0
Requires-Dist: mlx-lm==0.31.3
Requires-Dist: torch>=2.0
Provides-Extra: test
Requires-Dist: pytest>=7; extra == "test"
"""


def wheel(folder: Path, version: str = "2.0.7", metadata: str = METADATA) -> Path:
    path = folder / f"mlx_knife-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mlxk2/__init__.py", "")
        archive.writestr(f"mlx_knife-{version}.dist-info/METADATA", metadata.format(version=version))
    return path


def test_a_release_is_a_version_a_wheel_or_a_command(tmp_path):
    assert releases.parse("2.0.7") == releases.Release("2.0.7", "pypi")
    built = wheel(tmp_path)
    assert releases.parse(str(built)) == releases.Release(str(built), "wheel")
    assert releases.parse(str(built)).name == "2.0.7"
    command = tmp_path / "mlxk"
    command.write_text("#!/bin/sh\n")
    assert releases.parse(str(command)).kind == "command"
    for bad in ("latest", str(tmp_path / "missing.whl"), str(tmp_path / "no-such-mlxk")):
        with pytest.raises(ConfigError, match="release"):
            releases.parse(bad)


def test_the_plan_is_the_wheel_and_on_linux_mlx_with_its_cpu_backend_in_the_release_s_bounds(tmp_path):
    built = wheel(tmp_path)
    metadata = releases.metadata_of(built)
    assert (metadata.name, str(metadata.version)) == ("mlx-knife", "2.0.7")
    assert releases.install_plan(built, metadata, "linux", "3.11.9") == [str(built), "mlx[cpu]<0.32,>=0.30.0"]
    assert releases.install_plan(built, metadata, "darwin", "3.11.9") == [str(built)]


def test_a_release_that_does_not_accept_this_python_is_refused(tmp_path):
    built = wheel(tmp_path)
    with pytest.raises(ConfigError, match=r"requires Python >=3.10, this is 3.9.1"):
        releases.install_plan(built, releases.metadata_of(built), "linux", "3.9.1")


class Pip:
    """Stands in for subprocess.run: records each command, makes the venv's mlxk appear."""

    def __init__(self, fail: bool = False):
        self.commands: list[list[str]] = []
        self.fail = fail

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        if command[1:3] == ["-m", "venv"]:
            (Path(command[3]) / "bin").mkdir(parents=True)
            (Path(command[3]) / "bin" / "mlxk").write_text("#!/bin/sh\n")
        if "download" in command:
            wheel(Path(command[command.index("-d") + 1]).resolve(), command[-1].split("==")[1])
        failed = self.fail and "install" in command
        return subprocess.CompletedProcess(command, 1 if failed else 0, "", "ERROR: no matching distribution\n")


def test_a_version_is_downloaded_and_installed_once_then_reused(tmp_path):
    (tmp_path / "wheels").mkdir()
    pip, lines = Pip(), []
    mlxk = releases.ensure(releases.Release("2.0.7", "pypi"), tmp_path, lines.append, pip)
    assert mlxk == (str(tmp_path / "2.0.7" / "bin" / "mlxk"),)
    download, venv, install = pip.commands
    assert "download" in download and "--no-deps" in download and download[-1] == "mlx-knife==2.0.7"
    assert venv[1:3] == ["-m", "venv"] and install[-2:] == [
        str(tmp_path / "wheels" / "mlx_knife-2.0.7-py3-none-any.whl"), "mlx[cpu]<0.32,>=0.30.0"]
    stamp = json.loads((tmp_path / "2.0.7" / releases.STAMP).read_text())
    assert stamp["plan"] == ["mlx_knife-2.0.7-py3-none-any.whl", "mlx[cpu]<0.32,>=0.30.0"]
    assert "installed into" in lines[-1]

    again = Pip()
    assert releases.ensure(releases.Release("2.0.7", "pypi"), tmp_path, lines.append, again) == mlxk
    assert again.commands == [] and lines[-1].endswith("(cached)")


def test_a_changed_wheel_is_installed_afresh_and_a_failed_install_names_pip_s_words(tmp_path):
    built = wheel(tmp_path)
    release = releases.Release(str(built), "wheel")
    (first,) = releases.ensure(release, tmp_path / "venvs", lambda line: None, Pip())
    wheel(tmp_path, metadata=METADATA + "Requires-Dist: tiktoken>=0.7\n")  # same name, new content
    pip = Pip(fail=True)
    with pytest.raises(HarnessError, match="(?s)pip exited 1.*no matching distribution"):
        releases.ensure(release, tmp_path / "venvs", lambda line: None, pip)
    assert any("install" in command for command in pip.commands)
    assert not any(first.split("/bin/")[0] in " ".join(command) for command in pip.commands)


def test_an_installed_command_is_used_as_it_is(tmp_path):
    pip = Pip()
    assert releases.ensure(releases.Release("/opt/mlxk", "command"), tmp_path, print, pip) == ("/opt/mlxk",)
    assert pip.commands == []
