"""support/parallel.py without a model: how many shards, their arguments, their folders, and
shard processes that are ended together (stand-in processes, ended by the ids they were started with)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

from support import parallel, ram_budget
from support.errors import SuiteError


def test_userdata_reads_every_spelling_of_define():
    args = ["-D", "include=a*", "--define", "shard=1/2", "-Dhf_home=/x", "--define=max_models=3", "-n", "x=y"]
    assert parallel.userdata(args) == {"include": "a*", "shard": "1/2", "hf_home": "/x", "max_models": "3"}


@pytest.mark.parametrize("data, environ, cores, jobs", [
    ({}, {}, 2, 2),                         # the demo portfolio on two cores
    ({}, {}, 1, 1),                         # one core: one run
    ({}, {"HF_HOME": "/cache"}, 8, 1),      # a user's cache: models compete for memory
    ({"hf_home": "/cache"}, {}, 8, 1),
    ({"shard": "1/3"}, {}, 2, 1),           # already one shard of a bigger run
])
def test_auto_jobs(data, environ, cores, jobs):
    assert parallel.choose_jobs("auto", data, environ, cores) == jobs


def test_explicit_jobs_and_bad_values():
    assert parallel.choose_jobs("3", {}, {"HF_HOME": "/c"}, 2) == 3
    for bad in ("0", "two", "-1", "1.5"):
        with pytest.raises(SuiteError, match="JOBS="):
            parallel.choose_jobs(bad, {}, {}, 2)
    with pytest.raises(SuiteError, match="leave out -D shard"):
        parallel.choose_jobs("2", {"shard": "1/2"}, {}, 2)


def test_shard_args_and_folders(tmp_path):
    assert parallel.shard_args(["-n", "x"], 2, 3, {}, {}) == ["--tags=@live_e2e", "-n", "x", "-D", "shard=2/3"]
    share = ram_budget.system_budget().budget_gb / 2
    assert parallel.shard_args([], 1, 2, {}, {"HF_HOME": "/c"})[-2:] == ["-D", f"ram_budget_gb={share:.2f}"]
    assert parallel.shard_args(["-D", "ram_budget_gb=4"], 1, 2, {"ram_budget_gb": "4"}, {"HF_HOME": "/c"})[-1] == "shard=1/2"
    assert parallel.shard_dirs(tmp_path / "reports", 2) == [tmp_path / "reports-shard-1", tmp_path / "reports-shard-2"]


def test_clear_empties_reports_only(tmp_path):
    old = tmp_path / "reports"
    (old / "junit").mkdir(parents=True)
    parallel.clear(old)
    assert not old.exists()
    ended_early = tmp_path / "reports-shard-2"  # a shard that stopped before its verdict
    (ended_early / "allure-results").mkdir(parents=True)
    (ended_early / "console.txt").write_text("ConfigError: no model")
    parallel.clear(ended_early)
    assert not ended_early.exists()
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    (precious / "console.txt").write_text("mine too")
    with pytest.raises(SuiteError, match="not a reports folder"):
        parallel.clear(precious)
    assert (precious / "notes.txt").read_text() == "mine"


def test_bad_input_is_one_line_and_exit_2(capsys):
    assert parallel.main(["--jobs", "2", "-D", "no_such_key=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown setting -D no_such_key=1" in err[0], err
    assert parallel.main(["--jobs", "many"]) == 2


def _stand_in(code: str) -> list[str]:
    return ["-c", code]


def test_shards_prefix_their_lines_and_keep_their_console(tmp_path, capsys, monkeypatch):
    shards = parallel.Shards()
    monkeypatch.setattr(parallel, "_behave", lambda argv: [sys.executable, *argv])
    for i in (1, 2):
        shards.start(_stand_in(f"print('scenario of shard {i}')"), tmp_path / f"r{i}", f"[{i}/2] ")
    assert shards.wait(limit_s=60) == [0, 0]
    out = capsys.readouterr().out
    assert "[1/2] scenario of shard 1" in out and "[2/2] scenario of shard 2" in out, out
    assert (tmp_path / "r2" / "console.txt").read_text() == "scenario of shard 2\n"


def test_stopping_ends_every_shard_and_its_children(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "_behave", lambda argv: [sys.executable, *argv])
    monkeypatch.setattr(parallel, "GRACE_S", 5.0)
    shards = parallel.Shards()
    child = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); time.sleep(300)"
    shards.start(_stand_in(child), tmp_path / "r1", "[1/1] ")
    time.sleep(1.0)
    family = [psutil.Process(shards.procs[0].pid), *psutil.Process(shards.procs[0].pid).children(recursive=True)]
    started = time.monotonic()
    shards.stop()
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    assert time.monotonic() - started < 10
