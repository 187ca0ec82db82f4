"""The console formatter: pretty on a terminal, plain when piped; behave.ini makes it the default."""

from __future__ import annotations

import configparser
import io
import subprocess
import sys
from pathlib import Path

from behave.formatter.base import StreamOpener
from behave.formatter.plain import PlainFormatter
from behave.formatter.pretty import PrettyFormatter

from support import console

REPO = Path(__file__).resolve().parents[1]
BEHAVE = Path(sys.executable).parent / "behave"
STEPS_RUN = ["Given a first step", "When a second step", "Then a third step"]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_pretty_and_a_pipe_or_file_gets_plain():
    assert console.choose(StreamOpener(stream=Tty())) is PrettyFormatter
    assert console.choose(StreamOpener(stream=io.StringIO())) is PlainFormatter
    assert console.choose(StreamOpener("console.txt")) is PlainFormatter


def test_the_suite_makes_it_the_default_and_names_no_stdout_formatter_of_its_own():
    # behave appends default_format on stdout whenever no -f is given: a stdout formatter in
    # `format` as well would print every step twice (the pretty-twice log of issue 17)
    ini = configparser.ConfigParser()
    ini.read(REPO / "behave.ini")
    assert ini["behave"]["default_format"] == console.NAME
    assert ini["behave.formatters"][console.NAME] == "support.console:ConsoleFormatter"
    outfiles = ini["behave"]["outfiles"].split()
    assert len(outfiles) == len(ini["behave"]["format"].split()) and "-" not in outfiles, outfiles


FEATURE = "Feature: f\n  Scenario: s\n" + "".join(f"    {s}\n" for s in STEPS_RUN)
STEPS = 'from behave import step\n\n@step("a {which} step")\ndef _(context, which):\n    pass\n'


def run(tmp_path: Path, ini: str, *args: str) -> list[str]:
    """The step lines a piped behave run prints (location comments cut) in a tiny project."""
    (tmp_path / "features" / "steps").mkdir(parents=True, exist_ok=True)
    (tmp_path / "features" / "x.feature").write_text(FEATURE)
    (tmp_path / "features" / "steps" / "steps.py").write_text(STEPS)
    (tmp_path / "behave.ini").write_text(ini)
    done = subprocess.run([str(BEHAVE), "--no-summary", *args, "features"], cwd=tmp_path,
                          env={"PYTHONPATH": str(REPO), "PATH": str(BEHAVE.parent)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line.split(" # ")[0].split(" ... ")[0].strip() for line in done.stdout.splitlines() if " step" in line]


SUITE_STYLE = ("[behave]\ndefault_format = console\nformat = null\noutfiles = null.out\n"
               "[behave.formatters]\nconsole = support.console:ConsoleFormatter\n")


def test_piped_each_step_is_printed_once_and_a_command_line_format_replaces_the_console(tmp_path):
    assert run(tmp_path, SUITE_STYLE) == STEPS_RUN
    assert run(tmp_path, SUITE_STYLE, "-f", "progress") == []  # progress prints dots, no step lines


def test_a_stdout_formatter_in_behave_ini_prints_every_step_twice(tmp_path):
    # the old behave.ini (format = pretty on stdout): behave adds its default pretty beside it
    assert run(tmp_path, "[behave]\nformat = pretty\noutfiles = -\n") == [s for s in STEPS_RUN for _ in (1, 2)]
