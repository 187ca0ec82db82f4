"""The live run's setup through behave itself: dry run rows, exclusions, one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BEHAVE = Path(sys.executable).parent / "behave"


def behave(*args: str, timeout: float = 300, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BEHAVE), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": "", **(env_extra or {})})


def has_row(stdout: str, model_id: str) -> bool:
    """Whether the dry run shows the CLI outline's row of `model_id` (the row's name ends with the id)."""
    return re.search(rf"clean answer from {re.escape(model_id)}$", stdout, re.MULTILINE) is not None


def test_dry_run_shows_one_row_per_eligible_model_and_the_exclusions(demo_root):
    manifest = json.loads((demo_root / "portfolio.json").read_text())
    run = behave("--tags=@live_e2e", "--dry-run", "-f", "plain", "--no-summary")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    for m in manifest["models"]:
        if m["expect"] == "chat":
            assert has_row(run.stdout, m["id"]), m["id"]
        if m["expect"] == "excluded":
            assert f"excluded {m['id']}: {m['expect_reason']}" in run.stderr, run.stderr
    assert "gated mlx-e2e-demo/oversized: needs 7.2 GB, budget 6.0 GB" in run.stderr
    base = next(m["id"] for m in manifest["models"] if m["expect"] == "base")
    assert not has_row(run.stdout, base)  # base models get no chat rows


@pytest.mark.parametrize("args, says", [
    (["-D", "colour=red"], "unknown setting -D colour=red"),
    (["-D", "hf_home=/nonexistent/cache"], "hf_home /nonexistent/cache (from -D hf_home) does not exist"),
    (["-D", "mlxk=/bad/path/mlxk"], "-D mlxk=/bad/path/mlxk does not run"),
    (["-D", "max_models=lots"], "-D max_models=lots"),
    (["-D", "shard=5/2"], "-D shard=5/2"),
    (["-D", "startup_timeout=-3"], "-D startup_timeout=-3"),
])
def test_bad_input_ends_in_one_line(args, says):
    run = behave("--tags=@live_e2e", *args, timeout=60)
    out = run.stdout + run.stderr
    errors = [line for line in out.splitlines() if line.startswith("ConfigError:")]
    assert run.returncode != 0
    assert len(errors) == 1 and says in errors[0], out
    assert "Traceback" not in out


def test_an_empty_cache_is_reported_not_passed(tmp_path):
    (tmp_path / "hub").mkdir()
    run = behave("--tags=@live_e2e", "-D", f"hf_home={tmp_path}", timeout=60)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "ConfigError: no model in" in out and "qualifies" in out, out
    assert "Traceback" not in out


def test_plain_behave_runs_no_live_scenario():
    run = behave("-f", "plain", timeout=60)
    assert run.returncode == 0, run.stdout[-2000:]
    assert "0 scenarios passed" in run.stdout and " failed" in run.stdout
    assert "mlx-e2e: SUT" not in run.stderr  # no discovery happened


def test_a_feature_line_selects_the_rows_of_that_outline_only(demo_root, tmp_path):
    feature = ROOT / "features" / "server" / "robustness.feature"
    line = next(n for n, text in enumerate(feature.read_text().splitlines(), 1)
                if "recovers when a streaming client hangs up" in text)
    out = tmp_path / "dry-run.json"
    run = behave("--tags=@live_e2e", "--dry-run", "-f", "json", "-o", str(out), "--no-summary",
                 f"{feature.relative_to(ROOT)}:{line}")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    scenarios = [s for f in json.loads(out.read_text()) for s in f["elements"] if s.get("keyword") == "Scenario Outline"]
    chosen = [s["name"] for s in scenarios if s.get("status") == "untested"]
    chat = [m["id"] for m in json.loads((demo_root / "portfolio.json").read_text())["models"]
            if m["expect"] in ("chat", "vision")]  # a vision model is a chat model too
    assert chosen and all("recovers when a streaming client hangs up" in name for name in chosen), chosen
    assert len(chosen) == len(chat), f"expected one row per chat model {chat}, the dry run selects {chosen}"


def test_a_cli_or_reference_process_gets_room_within_the_budget(demo_root, tmp_path):
    """With a budget that holds one server but not a server and a second copy of the model, the
    server is evicted before `mlxk run` and before the reference decoder, and started again when
    a later scenario needs it: the run never holds more than the budget allows."""
    run = behave("--tags=@live_e2e", "-D", "include=mlx-e2e-demo/gemma-style", "-D", "ram_budget_gb=0.2",
                 "-n", "prints the server's answer|greedy answers", "-f", "progress",
                 env_extra={"MLX_E2E_REPORTS": str(tmp_path)})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert (verdict["server_starts"], verdict["server_evictions"]) == (2, 2), (
        f"expected 2 starts and 2 evictions (before the CLI run, before the reference decode), got {verdict}")


def test_a_shard_without_a_model_of_its_own_runs_while_the_portfolio_has_them(demo_root):
    """`make e2e ARGS="-D include=ONE"` makes 2 shards on the demo: the second has no model, which
    is fine (the first tests it); a portfolio without any chat model still fails in every shard."""
    run = behave("--tags=@live_e2e", "--dry-run", "-f", "plain", "--no-summary",
                 "-D", "include=mlx-e2e-demo/qwen-style", "-D", "shard=2/2")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "shard 2/2:" in run.stderr and "have no model in this shard" in run.stderr, run.stderr[-2000:]
    run = behave("--tags=@live_e2e", "--dry-run", "-D", "include=mlx-e2e-demo/bert-style-embed", "-D", "shard=2/2",
                 timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "qualifies" in out and "Traceback" not in out, out[-2000:]
