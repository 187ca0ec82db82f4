"""The demo portfolio: a valid Hugging Face cache that the SUT sees and answers as intended.

The models, their goldens and their intended discovery outcome come from
`support.demo_portfolio.models.SPECS` (collection needs no build); the tests check them
against the built portfolio (`demo_root`, the default root `make e2e` uses too) and the
SUT. A golden the SUT gets wrong fails here unless a registered known issue covers it;
then the case is a strict xfail, which turns red as soon as the SUT stops failing.
"""

from __future__ import annotations

import hashlib
import json
import re
from fnmatch import fnmatchcase
import subprocess
import sys
import time
import warnings
from functools import cache
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir

from support import expect, known_issues
from support.cache_manifest import compare, take
from support.cli_runner import run_cli
from support.demo_portfolio import builder, ensure_built, load_manifest
from support.demo_portfolio.hf_cache import SENTINEL
from support.demo_portfolio.models import SPECS
from support.errors import SuiteError

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "features" / "known_issues.toml"
# -- the same command as the `mlxk` fixture; collection needs it before fixtures exist
MLXK = (str(Path(sys.executable).parent / "mlxk"),)
GOLDEN_SCENARIO = "mlxk run prints the golden answer"
GOLDEN_TAGS = ["cli"]
GIB = 1024**3
NEED_FACTOR = 1.2  # the suite's RAM gate: size on disk times 1.2 must fit the budget
HEX40 = re.compile(r"[0-9a-f]{40}")
RUN_TIMEOUT = 120.0
DETERMINISM_SUBSET = ("qwen-style", "phi3-style")


@cache
def sut_version() -> str:
    """The numeric version `mlxk --version` reports, e.g. "2.0.8"."""
    result = run_cli(MLXK, ["--version"], None, 60)
    found = re.search(r"\d+(?:\.\d+)+", result.stdout)
    if result.returncode != 0 or not found:
        raise RuntimeError(f"cannot read the SUT version from `mlxk --version`:\n{result.describe()}")
    return found[0]


@cache
def registry() -> known_issues.Registry:
    return known_issues.load(REGISTRY)


def registered_for(model_id: str) -> list[known_issues.KnownIssue]:
    """The registry's entries for this model's golden `mlxk run` (whatever their failure messages)."""
    return [e for e in registry().entries
            if e.applies_to(model_id, sut_version()) and set(e.tags) <= set(GOLDEN_TAGS)
            and (e.scenario is None or fnmatchcase(GOLDEN_SCENARIO, e.scenario))]


def golden_cases() -> list:
    """One param per (chat model, golden prompt)."""
    return [pytest.param(spec.id, g.prompt, g.answer, id=f"{spec.id}:{g.prompt}")
            for spec in SPECS if spec.expect == "chat" and spec.variant == "normal" for g in spec.goldens]


@pytest.fixture(scope="module")
def manifest(demo_root: Path) -> dict:
    found = load_manifest(demo_root)
    assert found is not None, f"{demo_root} has no demo portfolio manifest after the build"
    return found


def entry(manifest: dict, model_id: str) -> dict:
    """The manifest entry of model_id (the manifest is built from the same specs)."""
    by_id = {m["id"]: m for m in manifest["models"]}
    assert model_id in by_id, f"{model_id} is in the specs but not in the manifest: {sorted(by_id)}"
    return by_id[model_id]


def main_snapshot(root: Path, model_id: str) -> Path:
    """The snapshot refs/main points at, in the cache under root."""
    repo = root / "hub" / f"models--{model_id.replace('/', '--')}"
    return repo / "snapshots" / (repo / "refs" / "main").read_text().strip()


# -- 1. the cache is one that huggingface_hub reads cleanly

def test_cache_scans_cleanly(demo_root: Path, manifest: dict) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = scan_cache_dir(demo_root / "hub")
    assert info.warnings == [], f"scan_cache_dir({demo_root / 'hub'}) warned: {info.warnings}"
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []

    repo_ids = sorted(repo.repo_id for repo in info.repos)
    assert repo_ids == sorted(m["id"] for m in manifest["models"]), "one repo per manifest model"
    for repo in info.repos:
        assert repo.repo_type == "model", repo.repo_id
        ref = repo.repo_path / "refs" / "main"
        assert ref.is_file(), f"{repo.repo_id}: no refs/main"
        rev = ref.read_text()
        assert HEX40.fullmatch(rev), f"{repo.repo_id}: refs/main holds {rev!r}, not a 40-hex revision"
        assert set(repo.refs) == {"main"} and repo.refs["main"].commit_hash == rev, repo.repo_id
        revisions = [r.commit_hash for r in repo.revisions]
        assert revisions == [rev], f"{repo.repo_id}: snapshots {revisions}, expected only {rev}"
        assert repo.refs["main"].snapshot_path.is_dir()


# -- 2. the SUT's discovery sees every model as intended

@pytest.fixture(scope="module")
def listing(demo_root: Path, mlxk: tuple[str, ...]) -> dict[str, dict]:
    """`mlxk list --json` on the demo portfolio, by model name."""
    result = run_cli(mlxk, ["list", "--json"], demo_root, 120)
    assert result.returncode == 0, result.describe()
    try:
        models = json.loads(result.stdout)["data"]["models"]
    except (ValueError, KeyError, TypeError) as error:
        raise AssertionError(f"unusable `mlxk list --json` output ({error!r}):\n{result.describe()}") from None
    return {m["name"]: m for m in models}


def test_list_shows_exactly_the_portfolio(manifest: dict, listing: dict[str, dict]) -> None:
    assert sorted(listing) == sorted(m["id"] for m in manifest["models"])


@pytest.mark.parametrize("model_id", [s.id for s in SPECS], ids=[s.id for s in SPECS])
def test_list_reports_intended_outcome(model_id: str, demo_root: Path, manifest: dict,
                                       listing: dict[str, dict]) -> None:
    want = entry(manifest, model_id)
    assert model_id in listing, f"`mlxk list --json` does not list {model_id}: {sorted(listing)}"
    got = listing[model_id]
    seen = {k: got.get(k) for k in ("framework", "health", "runtime_compatible", "model_type",
                                    "capabilities", "size_bytes", "reason")}
    where = f"{model_id} (expect {want['expect']}, variant {want['variant']}): mlxk list --json says {seen}"

    if want["expect"] == "chat":
        assert (got["framework"], got["health"], got["runtime_compatible"]) == ("MLX", "healthy", True), where
        assert got["model_type"] == "chat" and "chat" in got["capabilities"], where
    elif want["expect"] == "base":
        assert (got["framework"], got["health"], got["runtime_compatible"]) == ("MLX", "healthy", True), where
        assert got["model_type"] == "base" and "chat" not in got["capabilities"], where
    else:
        assert want["expect"] == "excluded", where

    if want["variant"] == "unhealthy":
        assert got["health"] == "unhealthy", where
    elif want["variant"] == "pytorch":
        assert got["framework"] == "PyTorch" and got["runtime_compatible"] is False, where
    elif want["variant"] == "oversized":
        budget = manifest["ram_budget_gb"]
        assert got["size_bytes"] * NEED_FACTOR > budget * GIB, \
            f"{where}; needs {got['size_bytes'] * NEED_FACTOR / GIB:.2f} GiB, must exceed the {budget} GiB budget"
        weights = main_snapshot(demo_root, model_id) / "model.safetensors"
        assert weights.is_file(), f"{model_id}: no loadable weights at {weights}"
        assert weights.stat().st_size < GIB, f"{weights} is {weights.stat().st_size} bytes, not small"
    else:
        assert want["variant"] == "normal", where


# -- 3. every chat model prints its golden answers

@pytest.mark.parametrize(("model_id", "prompt", "answer"), golden_cases())
def test_run_prints_golden_answer(model_id: str, prompt: str, answer: str, demo_root: Path,
                                  manifest: dict, mlxk: tuple[str, ...]) -> None:
    assert {"prompt": prompt, "answer": answer} in entry(manifest, model_id)["goldens"]
    result = run_cli(mlxk, ["run", model_id, prompt, "--temperature", "0"], demo_root, RUN_TIMEOUT)
    try:
        expect.that(result.returncode == 0, "expected exit code 0", result.describe())
        expect.same_text(answer + "\n", result.stdout, f"`mlxk run` answer of {model_id} to {prompt!r}",
                         result.describe())
    except AssertionError as failure:
        # a registered issue whose failure messages match: a known failure (xfail), else a new defect
        issue = registry().match(model_id, GOLDEN_SCENARIO, GOLDEN_TAGS, sut_version(), str(failure))
        if issue is None:
            raise
        pytest.xfail(f"{issue.id}: {issue.title}")
    stale = [e.id for e in registered_for(model_id)]
    assert not stale, f"registered issue(s) {stale} cover this run, but it passed: fixed? update the registry"


# -- 4. the builder never writes into a directory that is not its own

def test_builder_refuses_foreign_directory(tmp_path: Path) -> None:
    foreign = tmp_path / "someones-cache"
    foreign.mkdir()
    precious = foreign / "x"
    precious.write_text("not yours\n")
    before = precious.stat().st_mtime_ns

    command = [sys.executable, "-m", "support.demo_portfolio", "build", "--out", str(foreign)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    shown = f"command: {' '.join(command)}\nexit code {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"
    assert proc.returncode != 0, shown
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and str(foreign.resolve()) in lines[0], shown
    assert "Traceback" not in proc.stderr, shown

    with pytest.raises(SuiteError, match=re.escape(str(foreign))) as raised:
        ensure_built(foreign, log=lambda _: None)
    assert "\n" not in str(raised.value)

    assert sorted(p.name for p in foreign.iterdir()) == ["x"], "the builder wrote into the directory"
    assert precious.read_text() == "not yours\n" and precious.stat().st_mtime_ns == before
    assert not (foreign / SENTINEL).exists()


# -- 5. a warm build is a quick no-op

def test_warm_build_is_a_noop(demo_root: Path) -> None:
    before = take(demo_root)
    log: list[str] = []
    started = time.monotonic()
    ensure_built(demo_root, log=log.append)
    seconds = time.monotonic() - started
    changes = compare(before, take(demo_root), root=demo_root)
    assert not changes, changes.describe()
    assert seconds < 1.0, f"a warm build took {seconds:.2f} s (log: {log})"


# -- 6. the build is deterministic

def test_subset_builds_are_identical(tmp_path: Path, demo_root: Path, manifest: dict,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two builds of a 2-model subset: same manifest, byte-identical repos, same as the full build.

    Each build checks by greedy decoding that every golden answer comes out exactly (it
    raises otherwise), so identical weights and tokenizers mean identical golden answers.
    """
    subset = tuple(s for s in SPECS if s.name in DETERMINISM_SUBSET)
    assert len(subset) == len(DETERMINISM_SUBSET)
    monkeypatch.setattr(builder, "SPECS", subset)
    monkeypatch.setattr(builder, "capability_builders", lambda: ())  # their own tests check them
    builds = []
    for name in ("first", "second"):
        root = tmp_path / name
        built = json.loads(builder.build(root, log=lambda _: None, force=True).read_text())
        assert [m["id"] for m in built["models"]] == [s.id for s in subset]
        built.pop("built_seconds")
        files = {spec.id: {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                           for p in sorted(main_snapshot(root, spec.id).iterdir())}
                 for spec in subset}
        revisions = {spec.id: main_snapshot(root, spec.id).name for spec in subset}
        builds.append((built, files, revisions))

    (first, first_files, first_revs), (second, second_files, second_revs) = builds
    assert first == second, "the two builds' manifests differ (goldens, answer tokens or training steps)"
    assert first_files == second_files, "the two builds wrote different files"
    assert first_revs == second_revs
    for model in first["models"]:
        assert model == entry(manifest, model["id"]), f"{model['id']}: subset build differs from the portfolio"
        assert first_revs[model["id"]] == main_snapshot(demo_root, model["id"]).name, \
            f"{model['id']}: subset build's snapshot differs from the portfolio's"
