"""The reports of a live run, end to end: a one-model slice writes JUnit XML, the portfolio matrix,
metrics.json and Allure results; `make report` turns them into HTML that headless Chromium shows.

The slice runs in its own folder with a copy of behave.ini whose outputs point there (behave adds
command-line formatters to the configured ones, it does not replace them), so the project's
reports/ is left alone. The model is phi3-style, which has registered product defects, plus the
oversized demo model, which the RAM gate holds back.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from support import allure_results as ar
from support.metrics import UNITS
from support.paths import REPORTS, ROOT

MODEL, GATED = "mlx-e2e-demo/phi3-style", "mlx-e2e-demo/oversized"
TAGS = "@live_e2e and (@server or @performance)"
SCREENSHOT = REPORTS / "screenshots" / "allure-report.png"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def run_dir(demo_root, tmp_path_factory) -> Path:
    """A finished live slice: its reports folder (verdict, matrix, metrics, junit, allure-results)."""
    out = tmp_path_factory.mktemp("slice")
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.optionxform = str  # keep AllureFormatter.issue_pattern as written
    cfg.read(ROOT / "behave.ini")
    cfg["behave"].update({"paths": str(ROOT / "features"), "format": "plain\nallure",
                          "outfiles": f"{out / 'plain.txt'}\n{out / 'allure-results'}",
                          "junit_directory": str(out / "junit")})
    with open(out / "behave.ini", "w") as stream:
        cfg.write(stream)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": "", "MLX_E2E_REPORTS": str(out),
           "PYTHONPATH": str(ROOT)}
    run = subprocess.run([str(Path(sys.executable).parent / "behave"), f"--tags={TAGS}",
                          "-D", f"include={MODEL},{GATED}"],
                         cwd=out, env=env, capture_output=True, text=True, timeout=600)
    (out / "stderr.txt").write_text(run.stderr)
    assert (out / "verdict.json").is_file(), f"behave exit {run.returncode}: {run.stderr[-3000:]}"
    return out


def test_the_console_ends_with_the_matrix_and_the_speed(run_dir):
    err = (run_dir / "stderr.txt").read_text()
    assert f"mlx-e2e: portfolio matrix (also in {run_dir / 'portfolio.md'}):" in err
    assert (run_dir / "portfolio.md").read_text() in err
    assert re.search(rf"mlx-e2e:   {re.escape(MODEL)}: startup [\d.]+ s, ttft [\d.]+ s, tok/s [\d.]+", err), err


def test_junit_xml_holds_every_scenario_that_ran(run_dir):
    files = sorted((run_dir / "junit").glob("*.xml"))
    assert files, "no JUnit XML"
    cases = [c for f in files for c in ET.parse(f).getroot().iter("testcase")]
    assert any(MODEL in c.get("name", "") for c in cases)
    assert any(c.find("failure") is not None for c in cases)  # the registered KI-003 failures


def test_the_portfolio_matrix_shows_areas_known_issues_and_the_gated_model(run_dir):
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["unexpected_failures"] == [] and verdict["known_failures"], verdict
    text = (run_dir / "portfolio.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| model"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["model", "server", "streaming", "speed",
                                                                   "embeddings", "vision", "speech"]
    row = next(line for line in text.splitlines() if line.startswith(f"| {MODEL} "))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    issues = sorted({k["issue"] for k in verdict["known_failures"]})
    assert cells[0].startswith(f"known {issues[0]}") and cells[2] == "pass (1)", row
    gated = next(line for line in text.splitlines() if line.startswith(f"| {GATED} (gated)"))
    assert "skipped" in gated and "FAIL" not in gated
    assert f"- {GATED}: needs 7.2 GB, budget 6.0 GB" in text
    assert "## Excluded by discovery" in text and "- mlx-e2e-demo/broken-weights: unhealthy" in text


def test_metrics_json_has_the_machine_and_the_models_speed(run_dir):
    report = json.loads((run_dir / "metrics.json").read_text())
    assert {"cpu", "cores_physical", "cores_logical", "ram_gb", "os"} <= set(report["machine"])
    assert report["units"] == UNITS
    records = {r["model"]: r for r in report["models"]}
    phi3 = records[MODEL]
    for name in ("server_startup", "ttft", "tokens_per_s", "batch_latency"):
        assert phi3[name]["n"] >= 1 and phi3[name]["median"] > 0, (name, phi3[name])
        assert phi3[name]["unit"] == UNITS[name]
    assert phi3["server_startup"]["n"] == 1  # one server, reused by every scenario
    assert records[GATED]["gated"].startswith("needs 7.2 GB") and records[GATED]["ttft"]["n"] == 0


def test_allure_results_carry_labels_environment_categories_and_known_marks(run_dir):
    results = run_dir / "allure-results"
    docs = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    verdict = json.loads((run_dir / "verdict.json").read_text())
    ran = [d for d in docs if {"server", "performance"} & {lab["value"] for lab in d["labels"] if lab["name"] == "tag"}]
    assert len(ran) >= 10  # the others: scenarios the tags left out, reported as skipped without hooks
    for doc in ran:
        labels = {(lab["name"], lab["value"]) for lab in doc["labels"]}
        assert ("epic", ar.EPIC) in labels and any(n == "story" for n, _ in labels), doc["name"]
        if any(p["name"] == "model" for p in doc.get("parameters", [])):
            assert any(n == "story" and "<model>" in v for n, v in labels), doc["name"]
    marked = [d for d in docs if d.get("statusDetails", {}).get("message", "").startswith("KNOWN PRODUCT DEFECT KI-")]
    assert len(marked) == len(verdict["known_failures"]) and marked
    assert {d["name"] for d in marked} == {k["scenario"] for k in verdict["known_failures"]}
    assert all(d["status"] != "failed" for d in docs if d not in marked)  # nothing else failed
    critical = [d for d in docs if ("severity", "critical") in {(lab["name"], lab["value"]) for lab in d["labels"]}]
    assert any("golden" in d["name"] for d in critical) and len(critical) < len(docs) / 2
    assert any(link["url"] == "https://github.com/mzau/mlx-knife/issues/20" for d in docs for link in d.get("links", []))
    env = (results / "environment.properties").read_text()
    assert re.search(r"^SUT=mlx-knife \d+\.\d+", env, re.M) and "RAM.budget=6.0 GB" in env and "shard=all" in env
    assert json.loads((results / "categories.json").read_text()) == ar.CATEGORIES
    globals_ = [json.loads(p.read_text()) for p in results.glob("*-globals.json")]
    names = {a["name"] for g in globals_ for a in g.get("attachments", [])}
    assert names == {"SUT speed per model (metrics.json)", "portfolio matrix (portfolio.md)"}


def chromium() -> str:
    found = next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
    if found is None:
        pytest.fail("headless Chromium is needed to check the HTML report and none was found "
                    f"({', '.join(CHROMIUM_NAMES)}): on Debian `apt-get install -y chromium` (.ci/run does this)")
    return found


def browse(index: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--allow-file-access-from-files",  # the report loads its data files
            "--virtual-time-budget=20000", "--window-size=1400,1000", "--hide-scrollbars", *args,
            index.as_uri()]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def page_text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)).replace("&nbsp;", " ")


def test_make_report_builds_html_that_chromium_shows_with_the_test_count(run_dir, tmp_path, capsys):
    results, html, config = run_dir / "allure-results", run_dir / "allure-report", run_dir / "allurerc.json"
    make = subprocess.run(["make", "report", f"ALLURE_RESULTS={results}", f"ALLURE_REPORT={html}",
                           f"ALLURE_CONFIG={config}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert make.returncode == 0, make.stdout[-3000:] + make.stderr[-3000:]
    index = html / "index.html"
    assert index.is_file(), make.stdout[-2000:]
    docs = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    total = len(docs)
    failed = sum(d["status"] == "failed" for d in docs)

    categories = json.loads((html / "widgets" / "categories.json").read_text())
    names = {n["name"]: n["statistic"]["total"] for n in categories["nodes"].values() if n["type"] == "category"}
    assert names.get("Known product defects") == failed, names

    dom = browse(index, tmp_path / "profile-dom", "--dump-dom")
    text = page_text(dom.stdout)
    shown = re.search(r"\bTotal (\d+)", text)
    assert shown and int(shown[1]) == total, f"expected the page to show Total {total}: {text[:1500]!r}"
    assert f"Failed {failed}" in text and ar.EPIC in text

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    browse(index, tmp_path / "profile-shot", f"--screenshot={SCREENSHOT}")
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 10_000, "no screenshot"
    with capsys.disabled():
        print(f"\nmlx-e2e: screenshot of the Allure report ({total} tests): {SCREENSHOT}")
