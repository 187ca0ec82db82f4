"""One Allure run of every conformance column, the target as a parameter.

:func:`join` copies each column's ``allure-results`` (a merged live run's) into one folder,
reports/conformance/allure-results: every test result gets the parameter ``target`` (the column's
title, e.g. "mlx_lm 0.32.2") and a ``historyId`` made distinct per target, so the report shows each
scenario once per target instead of treating the targets' results as retries of one test. Allure 3
computes its own history id from the test case (its ``fullName``) and the parameters that are not
``excluded``, so the ``target`` parameter alone separates them there; the rewritten ``historyId`` does
the same for readers that take it from the file (Allure 2). ``testCaseId`` stays: per Allure's docs it
names the test case (the scenario) whatever its parameter values. Attachments and containers are
copied as they are (named by uuid); the environment joins the columns' values with `` | ``; the
conformance table is the run's global attachment.

:func:`generate` builds the HTML report as ``make report`` does: support/allure_results.py's
config, then ``node_modules/.bin/allure generate`` (the pinned Allure 3 of package.json).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from support import allure_results
from support.errors import SuiteError
from support.merge import merged_environment
from support.paths import ROOT

TARGET = "target"
ALLURE = ROOT / "node_modules" / ".bin" / "allure"
NOT_COPIED = ("environment.properties", "categories.json")  # joined or written anew
GENERATE_TIMEOUT_S = 600


def history_id(history: str | None, full_name: str | None, target: str) -> str:
    """A test's history id on one target: distinct per target, the same for the same test."""
    return hashlib.md5(f"{history or full_name}\x1f{TARGET}={target}".encode()).hexdigest()


def with_target(result: dict, target: str) -> dict:
    """An Allure test result with the ``target`` parameter and its per-target history id."""
    parameters = [p for p in result.get("parameters", []) if p.get("name") != TARGET]
    return {**result, "parameters": [*parameters, {"name": TARGET, "value": target}],
            "historyId": history_id(result.get("historyId"), result.get("fullName"), target)}


def join(columns: Sequence[tuple[str, Path]], out: Path, table: str = "") -> int:
    """Every column's results (``(target title, allure-results folder)``) in ``out``, emptied first;
    returns the number of test results. SuiteError when two columns hold the same file (one run given twice)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    environments, results = [], 0
    for target, folder in columns:
        for path in sorted(folder.glob("*")) if folder.is_dir() else ():
            if path.name in NOT_COPIED or path.name.endswith("-globals.json") or not path.is_file():
                if path.name == "environment.properties":
                    environments.append(path.read_text(encoding="utf-8"))
                continue
            if (out / path.name).exists():
                raise SuiteError(f"{path.name} is in two columns' results ({folder}): one run given twice")
            if path.name.endswith("-result.json"):
                doc = with_target(json.loads(path.read_text(encoding="utf-8")), target)
                (out / path.name).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
                results += 1
            else:
                shutil.copy2(path, out / path.name)  # attachments and containers
    environment = merged_environment(environments, [])
    allure_results.finalize(out, {**environment, "targets": " | ".join(t for t, _ in columns)})
    if table:
        allure_results.write_global_attachment(out, "conformance table (conformance.md)", table, "text")
    return results


def generate(results: Path, report: Path, allure: Path = ALLURE) -> str | None:
    """The HTML report of ``results`` in ``report`` (Allure 3, as ``make report``); None when written,
    else why not (one line)."""
    if not allure.exists():
        return f"no {allure.relative_to(ROOT) if allure.is_relative_to(ROOT) else allure}: run `npm ci` (make conformance does)"
    config = report.with_name("allurerc.json")
    allure_results.write_allure3_config(config, name="mlx-e2e conformance")
    if report.exists():
        shutil.rmtree(report)
    try:
        run = subprocess.run([str(allure), "generate", "--config", str(config), "-o", str(report), str(results)],
                             cwd=ROOT, capture_output=True, text=True, timeout=GENERATE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"allure generate took more than {GENERATE_TIMEOUT_S} s"
    if run.returncode != 0:
        tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return f"allure generate exited {run.returncode}: {tail[0]}"
    return None
