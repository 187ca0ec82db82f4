"""behave hooks: discovery and RAM gating before the run, known issues and teardown after it."""

from __future__ import annotations

import json
import signal
import sys

from behave.model_core import Status
from behave.tag_matcher import ActiveTagMatcher

from . import evidence, outlines, session
from . import reporting
from .paths import REPORTS

LIVE_TAG = "live_e2e"
VERDICT = REPORTS / "verdict.json"


def say(line: str) -> None:
    """Progress a person can follow, above behave's own output."""
    print(f"mlx-e2e: {line}", file=sys.stderr, flush=True)


def _live_selected(config, features) -> bool:
    expr = config.tag_expression
    return any(LIVE_TAG in s.effective_tags and (expr is None or expr.check(s.effective_tags))
               for f in features for s in f.walk_scenarios(with_outlines=True))


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def start_session(config, features):
    """The live run's session (None when no live scenario is selected); SuiteError on bad input."""
    if not _live_selected(config, features):
        return None  # plain `behave`: no live scenario, no discovery, no model
    signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM ends servers like Ctrl-C does
    reporting.check_userdata(config.userdata)  # reports: performance thresholds (SuiteError when bad)
    return session.start(config.userdata, features, say)


def before_all(context) -> None:
    context.suite = getattr(context._runner, "suite", None)
    context.known_failures, context.unexpected_failures = [], []
    reporting.before_all(context)  # reports: portfolio matrix, SUT speed, thresholds


def _model_of(scenario) -> str | None:
    row = getattr(scenario, "_row", None)
    if row is None or outlines.MODEL_COLUMN not in row.headings:
        return None
    return row[outlines.MODEL_COLUMN]


def before_scenario(context, scenario) -> None:
    context.model = _model_of(scenario)
    context.evidence = []
    reporting.before_scenario(context, scenario)  # reports: Allure epic and story
    suite = context.suite
    if suite is None:
        return
    matcher = ActiveTagMatcher({"portfolio": suite.portfolio_name})
    if matcher.should_skip(scenario, use_inherited=True):
        scenario.skip("only on the demo portfolio (it needs golden answers); "
                      f"this run is on the {suite.portfolio_name} portfolio")
        return
    reason = suite.gated_reason(context.model) if context.model else None
    if reason:
        scenario.skip(f"RAM gate: {context.model} {reason}")


def after_scenario(context, scenario) -> None:
    suite = context.suite
    issue = None
    if suite is not None:
        suite.timings.update(evidence.seconds_by_kind(context.evidence))
        if scenario.status == Status.failed:  # a hook error or undefined step is never a known issue
            message = next((s.error_message or "" for s in scenario.all_steps if s.status == Status.failed), "")
            issue = suite.registry.match(context.model or "", scenario.name, scenario.effective_tags,
                                         suite.sut_version, message)
        reporting.after_scenario(context, scenario, issue)  # reports: matrix, speed, Allure marks
    if suite is None or scenario.status in (Status.passed, Status.skipped, Status.untested):
        return
    server = getattr(context, "server", None)
    folder = evidence.keep_failure(scenario.name, context.evidence, server.log_path if server else None)
    if issue is None:
        context.unexpected_failures.append(scenario.name)
        say(f"evidence of the failure: {folder}")
        return
    context.known_failures.append({"scenario": scenario.name, "issue": issue.id, "kind": issue.kind})
    say(f"known {'product defect' if issue.kind == 'product' else 'model quality issue'} "
        f"{issue.id} ({issue.title}): {scenario.name}")


def after_all(context) -> None:
    suite = context.suite
    if suite is None:
        return
    problems = suite.close()
    for p in problems:
        say(f"error: {p}")
    seen = {k["issue"] for k in context.known_failures}
    models = [m.id for m in suite.portfolio.text]
    not_seen = [e.id for e in suite.registry.entries
                if e.id not in seen and any(e.applies_to(m, suite.sut_version) for m in models)]
    verdict = {
        "sut_version": suite.sut_version,
        "portfolio": str(suite.hf_home),
        "server_starts": getattr(suite.pool, "starts", 0),
        "server_evictions": sum(1 for e in getattr(suite.pool, "events", ()) if e[0] == "evict"),
        "seconds": {"server_startup": round(getattr(suite.pool, "startup_seconds_total", 0.0), 3),
                    **{k: round(v, 3) for k, v in sorted(suite.timings.items())}},
        "known_failures": context.known_failures,
        "unexpected_failures": context.unexpected_failures,
        "harness_problems": problems,
        "registered_not_seen": not_seen,
    }
    REPORTS.mkdir(parents=True, exist_ok=True)
    VERDICT.write_text(json.dumps(verdict, indent=2) + "\n")
    if context.known_failures:
        say(f"{len(context.known_failures)} scenario(s) failed with registered known issues "
            f"({', '.join(sorted({k['issue'] for k in context.known_failures}))})")
    if not_seen:
        say(f"registered issues that did not fail in this run (not exercised, or fixed?): {', '.join(not_seen)}")
    reporting.after_all(context, say)  # reports: portfolio.md, metrics.json, Allure environment/categories
    if problems:
        raise SystemExit(2)


after_all.capture = False  # behave shows a passing hook's output only when not captured: the run's last lines
