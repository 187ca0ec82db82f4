"""The reports of a live run, fed by the behave hooks (support/hooks.py calls one function each).

* the portfolio matrix, models x areas (support/portfolio_matrix.py): console and reports/portfolio.md,
  its outcomes in reports/matrix.json (what support/merge.py joins)
* the SUT's speed per model (support/metrics.py): reports/metrics.json, also attached to Allure
* Allure labels, known-issue marks, environment.properties and categories.json
  (support/allure_results.py)
"""

from __future__ import annotations

import json
import sys
from typing import Callable

import allure

from . import allure_results, metrics, outlines, portfolio_matrix
from .paths import REPORTS

MATRIX = REPORTS / "portfolio.md"
MATRIX_DATA = REPORTS / "matrix.json"
METRICS = REPORTS / "metrics.json"


def before_all(context) -> None:
    suite = context.suite
    context.allure_plugins = allure_results.enable_dynamic_labels(getattr(context._runner, "formatters", []))
    context.matrix = portfolio_matrix.Matrix()
    context.speed = metrics.Collector([m.id for m in suite.portfolio.models] if suite is not None else None)


def before_scenario(context, scenario) -> None:
    allure_results.label_open_test(scenario.name, outlines.row_model(scenario))


def after_scenario(context, scenario, issue) -> None:
    """``issue``: the registered known issue that explains this failed scenario, or None."""
    context.matrix.add(outlines.row_model(scenario), scenario.effective_tags, scenario.status,
                       issue.id if issue is not None else None,
                       feature=scenario.location.filename, scenario=scenario.name)
    context.speed.add_evidence(context.sut.evidence)
    if context.sut.load is not None:
        context.speed.add_load(context.sut.model, context.sut.load.summary())
    if issue is not None:
        allure_results.mark_open_test_known(issue.id, issue.kind, issue.link)


def after_all(context, say: Callable[[str], None]) -> None:
    allure_results.disable_dynamic_labels(context.allure_plugins)  # every result is written
    suite = context.suite
    models = [m.id for m in suite.portfolio.models]
    machine = metrics.machine_info()
    if suite.pool is not None:
        context.speed.add_server_starts(suite.pool.events)
    target = suite.target
    speed = context.speed.report(models, machine, sut_version=suite.sut_version,
                                 portfolio=str(suite.hf_home), gated=suite.portfolio.gated, target=target.name,
                                 meanings={"server_startup": f"{target.title} server: {target.startup_measures}",
                                           "cli_wall": f"{' '.join(target.command)} MODEL ... (exit 0): "
                                                       "wall time, model load included"})
    REPORTS.mkdir(parents=True, exist_ok=True)
    METRICS.write_text(json.dumps(speed, indent=2) + "\n", encoding="utf-8")
    doc = context.matrix.document(models, suite.portfolio.excluded, suite.portfolio.gated,
                                  title=f"Portfolio matrix: {target.title} {suite.sut_version} on {suite.hf_home}")
    MATRIX_DATA.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    table = portfolio_matrix.render_document(doc)
    MATRIX.write_text(table, encoding="utf-8")

    say(f"portfolio matrix (also in {MATRIX}):")
    print(table, file=sys.stderr, flush=True)
    say(f"SUT speed per model, medians (details and units in {METRICS}):")
    for line in metrics.format_table(speed):
        say("  " + line)

    results = allure_results.results_dir_of(getattr(context._runner, "formatters", []))
    if results is None:
        return
    allure.global_attach(json.dumps(speed, indent=2), name="SUT speed per model (metrics.json)",
                         attachment_type=allure.attachment_type.JSON)
    allure.global_attach(table, name="portfolio matrix (portfolio.md)", attachment_type=allure.attachment_type.TEXT)
    settings = suite.settings
    environment = allure_results.run_environment(
        sut=" ".join(target.command), sut_title=target.title, sut_version=suite.sut_version, portfolio=str(suite.hf_home),
        budget=suite.budget.describe(), shard=settings.shard, machine=machine)
    marked = allure_results.finalize(results, environment)
    say(f"Allure results in {results} (environment, categories, {len(marked)} known-issue result(s) "
        "marked); HTML: make report")
