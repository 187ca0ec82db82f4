"""The release gate: the live suite run against several releases of the SUT, then compared.

    python -m support.gate compare BASE CANDIDATE [--reuse] [-- BEHAVE_ARGS...]   (make compare)
    python -m support.gate matrix RELEASE... [--reuse] [-- BEHAVE_ARGS...]        (make matrix)

Each release (a PyPI version, a wheel or an `mlxk` path, support/releases.py) runs
``behave --tags=@live_e2e -D mlxk=<its mlxk> BEHAVE_ARGS`` on the demo portfolio (or on HF_HOME)
into its own reports folder, ``reports/releases/<release>/``, one run at a time. ``compare``
writes reports/compare.md and compare.json and exits 1 on a regression; ``matrix`` writes
reports/matrix.md and matrix.json (scenarios x releases) and exits 1 when the registry's ranges
disagree with the runs (support/history.py). Otherwise both exit 2 when a run did not finish.
``--reuse`` takes a release's finished run with the same command line instead of running again.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import compare, history, known_issues, releases
from .errors import HarnessError, SuiteError
from .paths import REGISTRY, REPORTS, ROOT
from .runner import say

RUNS = REPORTS / "releases"
RECORD = "gate-run.json"
RUN_TIMEOUT = 1800.0  # seconds for one release's live run


def suite_command(mlxk: tuple[str, ...], behave_args: list[str], folder: Path) -> list[str]:
    """The live run of one release; its console goes to ``folder/console.txt``."""
    return [sys.executable, "-m", "behave", "--tags=@live_e2e", "-D", f"mlxk={shlex.join(mlxk)}",
            *behave_args, "-f", "plain", "-o", str(folder / "console.txt")]


def _unfinished(folder: Path, returncode: int | None) -> str | None:
    """Why the run left no verdict (its last stderr line), or None when it finished."""
    if (folder / "verdict.json").is_file():
        return None
    stderr = (folder / "stderr.txt").read_text(errors="replace") if (folder / "stderr.txt").is_file() else ""
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "no output")
    ended = "timed out" if returncode is None else f"behave exited {returncode}"
    return f"{ended} without a verdict: {last[:300]}"


def run_release(name: str, mlxk: tuple[str, ...], behave_args: list[str], reuse: bool = False,
                timeout: float = RUN_TIMEOUT) -> compare.Run:
    """One release's live run in reports/releases/<name>/ (a finished one reused with ``reuse``)."""
    folder = RUNS / name
    command = suite_command(mlxk, behave_args, folder)
    record_path = folder / RECORD
    if reuse and record_path.is_file() and json.loads(record_path.read_text())["command"] == command \
            and (folder / "verdict.json").is_file():
        say(f"release {name}: reusing the run in {folder}")
        return compare.load_run(name, folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = {**os.environ, "MLX_E2E_REPORTS": str(folder), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.monotonic()
    with open(folder / "stdout.txt", "wb") as out, open(folder / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            returncode: int | None = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # the suite ends its servers on Ctrl-C
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            returncode = None
        except BaseException:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
            raise
    seconds = time.monotonic() - started
    record_path.write_text(json.dumps({"command": command, "returncode": returncode,
                                       "seconds": round(seconds, 1)}, indent=2) + "\n")
    run = compare.load_run(name, folder, error=_unfinished(folder, returncode))
    failed = [o for o in run.outcomes.values() if o.failed]
    say(f"release {name} ({run.version or 'version unknown'}): {seconds:.0f} s, {len(run.outcomes)} scenarios, "
        f"{len(failed)} failed ({sum(1 for o in failed if o.issue)} known)"
        + (f"; DID NOT FINISH: {run.error}" if run.error else "") + f"; reports {folder}")
    return run


def _names(specs: list[releases.Release], commands: list[tuple[str, ...]]) -> list[str]:
    """A distinct name per release (an mlxk command is named by the version it reports)."""
    names: list[str] = []
    for release, mlxk in zip(specs, commands):
        name = release.name if release.kind != "command" else releases.version_of(mlxk)
        while name in names:
            name += "+"
        names.append(name)
    return names


def run_all(specs: list[str], behave_args: list[str], reuse: bool) -> list[compare.Run]:
    """Install every release (each in its cached venv), then run the suite on each in turn."""
    parsed = [releases.parse(spec) for spec in specs]
    commands = [releases.ensure(release, log=say) for release in parsed]
    names = _names(parsed, commands)
    return [run_release(name, mlxk, behave_args, reuse) for name, mlxk in zip(names, commands)]


def gate_compare(base: str, candidate: str, behave_args: list[str], reuse: bool = False) -> int:
    registry = known_issues.load(REGISTRY)
    runs = [history.rebook(run, registry) for run in run_all([base, candidate], behave_args, reuse)]
    result = compare.compare(*runs)
    findings = [str(f) for f in history.check(registry, runs)]
    markdown = compare.render_markdown(result, REPORTS)
    if findings:
        markdown += "\n## The registry checked against these runs\n\n" + "".join(f"- {f}\n" for f in findings)
    md, _ = compare.write(REPORTS, "compare", markdown, {**compare.to_json(result), "registry_findings": findings})
    say(f"{runs[1].name} vs {runs[0].name}: {len(result.new_failures)} new failure(s), "
        f"{len(result.no_longer_tested)} no longer tested, {len(result.fixes)} fix(es), "
        f"{len(result.changed_failures)} changed and {len(result.unchanged_failures)} unchanged failure(s); {md}")
    return result.exit_code()


def gate_matrix(specs: list[str], behave_args: list[str], reuse: bool = False) -> int:
    registry = known_issues.load(REGISTRY)
    runs = [history.rebook(run, registry) for run in run_all(specs, behave_args, reuse)]
    findings = [str(f) for f in history.check(registry, runs)]
    md, _ = compare.write(REPORTS, "matrix", compare.render_matrix(runs, findings),
                          compare.matrix_json(runs, findings))
    say(f"version matrix of {len(runs)} release(s), {len(findings)} registry finding(s): {md}")
    return 2 if any(run.error for run in runs) else 1 if findings else 0


def main(argv: list[str]) -> int:
    own, behave_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    reuse = "--reuse" in own
    words = [word for word in own if word != "--reuse"]
    try:
        if words[:1] == ["compare"] and len(words) == 3:
            return gate_compare(words[1], words[2], behave_args, reuse)
        if words[:1] == ["matrix"] and len(words) >= 2:
            return gate_matrix(words[1:], behave_args, reuse)
    except (SuiteError, HarnessError) as error:
        say(f"error: {error}")
        return 2
    print("usage:\n" + "\n".join(__doc__.strip().splitlines()[2:4]), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
