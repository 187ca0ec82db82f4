"""behave hooks: a driver per scenario, skip policy, and the failure's verdict; reports elsewhere.

The live run's session is started by the runner (support/runner.py), before any hook; the
verdict is kept by support/verdict.py, the reports by support/reporting.py.
"""

from __future__ import annotations

from behave.tag_matcher import ActiveTagMatcher

from . import evidence, outlines, reporting, verdict
from .driver import Sut
from .runner import say
from .targets import not_offered_reason


def before_all(context) -> None:
    context.suite = getattr(context._runner, "suite", None)
    context.tally = verdict.Tally()
    reporting.before_all(context)  # reports: portfolio matrix, SUT speed


def skip_reason(suite, scenario, model: str | None) -> str | None:
    """Why the scenario does not run here: it needs a feature the target lacks (@needs.<feature>),
    it is demo-only on a user's portfolio, not per model in a shard but the first (so merged shards
    count it once), or over the RAM budget."""
    lacking = not_offered_reason(suite.target, scenario.effective_tags)
    if lacking:
        return lacking
    shard = suite.settings.shard
    if model is None and shard is not None and shard[0] != 1:
        return f"not per model: it runs in shard 1/{shard[1]} only (merged shards count it once)"
    if ActiveTagMatcher({"portfolio": suite.portfolio_name}).should_skip(scenario, use_inherited=True):
        return ("only on the demo portfolio (it needs golden answers); "
                f"this run is on the {suite.portfolio_name} portfolio")
    reason = suite.gated_reason(model) if model else None
    return f"RAM gate: {model} {reason}" if reason else None


def before_scenario(context, scenario) -> None:
    model = outlines.row_model(scenario)
    context.sut = Sut(context.suite, model=model)
    reporting.before_scenario(context, scenario)  # reports: Allure epic and story
    if context.suite is not None:
        reason = skip_reason(context.suite, scenario, model)
        if reason:
            scenario.skip(reason)


def after_scenario(context, scenario) -> None:
    suite, sut = context.suite, context.sut
    if suite is None:
        return
    suite.timings.update(evidence.seconds_by_kind(sut.evidence))
    issue, failed = None, scenario.status.has_failed()
    if failed:
        message, exception = verdict.failure_of(scenario)
        product = verdict.is_product_failure(exception)
        if product:
            issue = suite.registry.match(sut.model or "", scenario.name, scenario.effective_tags,
                                         suite.sut_version, message, target=suite.target.name)
    reporting.after_scenario(context, scenario, issue)  # reports: matrix, speed, Allure marks
    if not failed:
        context.tally.record(scenario.name, sut.model, scenario.effective_tags, scenario.status.name,
                             reason=scenario.skip_reason)
        return
    context.tally.add(scenario.name, product, issue)
    folder = evidence.keep_failure(scenario.name, sut.evidence, sut.server.log_path if sut.server else None)
    context.tally.record(scenario.name, sut.model, scenario.effective_tags, "failed", message, product,
                         issue, folder)
    if issue is not None:
        say(f"known {'product defect' if issue.kind == 'product' else 'model quality issue'} "
            f"{issue.id} ({issue.title}): {scenario.name}")
    else:
        say(f"{'failure' if product else 'harness failure (not a product defect)'}; evidence: {folder}")


def after_all(context) -> None:
    suite, tally = context.suite, context.tally
    if suite is None:
        return
    problems = suite.close()
    for p in problems:
        say(f"error: {p}")
    result = verdict.write(tally, suite, problems)
    if tally.known_failures:
        say(f"{len(tally.known_failures)} scenario(s) failed with registered known issues "
            f"({', '.join(sorted({k['issue'] for k in tally.known_failures}))})")
    if result["registered_not_seen"]:
        say("registered issues that did not fail in this run (not exercised, or fixed?): "
            + ", ".join(result["registered_not_seen"]))
    reporting.after_all(context, say)  # reports: portfolio.md, metrics.json, Allure environment/categories
    if problems:
        raise SystemExit(2)


after_all.capture = False  # behave shows a passing hook's output only when not captured: the run's last lines
