"""The verdict of a live run, written (by the hooks) and read (by `make e2e`) here only.

A failed scenario is a **product failure** when its failing step raised `AssertionError` (a check
of the system under test); only those can be registered known issues. Anything else that stopped
a scenario (a `HarnessError`, a `SuiteError`, an error in the suite's code, a hook error, an
undefined step) is a **harness failure**: never booked as a product defect, never as a known
issue, and it fails the run. The decision is by exception type, never by message text.

Usage: `behave ...; python -m support.verdict $?` (the Makefile's e2e target does this):
failures of registered known issues do not fail the run, all else does.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .paths import REPORTS

VERDICT = REPORTS / "verdict.json"


def failure_of(scenario) -> tuple[str, BaseException | None]:
    """The failing step's message and exception ('' and None when no step failed: a hook error)."""
    step = next((s for s in scenario.all_steps if s.status.has_failed()), None)
    if step is None:
        return "", None
    return step.error_message or "", getattr(step, "exception", None)


def is_product_failure(exception: BaseException | None) -> bool:
    return isinstance(exception, AssertionError)


OUTCOMES = ("passed", "skipped", "known", "failed", "harness")  # a scenario's outcome in the verdict
DETAIL_LIMIT = 300  # characters of a failure's first line kept as its outcome's detail


@dataclass
class Tally:
    """What the scenarios of one run ended as."""

    known_failures: list[dict] = field(default_factory=list)
    unexpected_failures: list[str] = field(default_factory=list)
    harness_failures: list[str] = field(default_factory=list)
    scenarios: list[dict] = field(default_factory=list)  # every scenario's end, in run order

    def add(self, scenario_name: str, product: bool, issue=None) -> None:
        if not product:
            self.harness_failures.append(scenario_name)
        elif issue is None:
            self.unexpected_failures.append(scenario_name)
        else:
            self.known_failures.append({"scenario": scenario_name, "issue": issue.id, "kind": issue.kind})

    def record(self, scenario_name: str, model: str | None, tags, status: str, message: str = "",
               product: bool = True, issue=None, evidence: Path | None = None, reason: str | None = None) -> None:
        """One scenario's end. ``status`` is behave's: passed, failed or skipped (``reason``: why);
        for a failure its message, whether a check of the SUT failed (product), the registered
        issue it was booked as and its evidence folder (relative to the reports). ``outcome`` sorts
        it for the conformance table and the stability bench: passed, skipped, known, failed
        (product, no issue) or harness; ``detail`` is the skip reason, the issue id or the failure
        message's first line."""
        if status != "failed":
            outcome, detail = ("skipped", reason or "skipped") if status == "skipped" else ("passed", None)
        elif issue is not None:
            outcome, detail = "known", issue.id
        else:
            outcome = "failed" if product else "harness"
            detail = (message.strip().splitlines() or ["(no message)"])[0][:DETAIL_LIMIT]
        self.scenarios.append({
            "scenario": scenario_name, "model": model, "tags": sorted(t.lstrip("@") for t in tags),
            "status": status, "outcome": outcome, "detail": detail, "message": message, "product": product,
            "issue": issue.id if issue is not None else None,
            "evidence": str(evidence.relative_to(REPORTS)) if evidence is not None else None})


def write(tally: Tally, suite, problems: list[str]) -> dict:
    """reports/verdict.json for the run of `suite` (a support.session.Session)."""
    seen = {k["issue"] for k in tally.known_failures}
    models = [m.id for m in suite.portfolio.models]
    pool = suite.pool
    verdict = {
        "target": suite.target.name,
        "sut_version": suite.sut_version,
        "portfolio": str(suite.hf_home),
        "shard": "{}/{}".format(*suite.settings.shard) if suite.settings.shard else None,
        "server_starts": getattr(pool, "starts", 0),
        "server_evictions": sum(1 for e in getattr(pool, "events", ()) if e[0] == "evict"),
        "servers_died": [e[1] for e in getattr(pool, "events", ()) if e[0] == "died"],  # noticed, replaced
        "servers_hung": [e[1] for e in getattr(pool, "events", ()) if e[0] == "hung"],  # retired for the run
        "seconds": {"server_startup": round(getattr(pool, "startup_seconds_total", 0.0), 3),
                    **{k: round(v, 3) for k, v in sorted(suite.timings.items())}},
        "known_failures": tally.known_failures,
        "unexpected_failures": tally.unexpected_failures,
        "harness_failures": tally.harness_failures,
        "harness_problems": problems,
        "registered_not_seen": [e.id for e in suite.registry.entries
                                if e.id not in seen and any(e.applies_to(m, suite.sut_version, suite.target.name)
                                                                    for m in models)],
        "scenarios": tally.scenarios,
    }
    REPORTS.mkdir(parents=True, exist_ok=True)
    VERDICT.write_text(json.dumps(verdict, indent=2) + "\n")
    return verdict


def read(reports: Path = REPORTS) -> dict | None:
    """The verdict of the run whose reports are in `reports` (None when it did not finish)."""
    path = reports / VERDICT.name
    return json.loads(path.read_text()) if path.is_file() else None


def problems(verdict: dict) -> list[str]:
    """What fails a run whatever is registered: unexpected and harness failures, harness problems."""
    return verdict["unexpected_failures"] + verdict.get("harness_failures", []) + verdict["harness_problems"]


def _say(line: str) -> None:
    print(f"mlx-e2e: {line}", file=sys.stderr)


def judge(verdict: dict, say: Callable[[str], None] = _say) -> int:
    """0 when every failure of the verdict is a registered known issue (or there is none), else 1."""
    bad = problems(verdict)
    if bad:
        say(f"{len(bad)} unexpected failure(s): {'; '.join(bad[:5])}")
        return 1
    if verdict["known_failures"]:
        issues = sorted({k["issue"] for k in verdict["known_failures"]})
        say(f"every failure is a registered known issue ({', '.join(issues)}); see features/known_issues.toml")
    return 0


def exit_code(behave_code: int, verdict: dict | None, say: Callable[[str], None] = _say) -> int:
    """The exit code of a live run that behave ended with `behave_code`, given its verdict."""
    if behave_code == 0:
        return 0
    if verdict is None:
        say(f"behave exited {behave_code} before the run finished (no {VERDICT})")
        return behave_code
    if not verdict["known_failures"]:
        return behave_code
    return judge(verdict, say)


def main(argv: list[str], reports: Path = REPORTS) -> int:
    """The exit code of a live run that behave ended with argv[0] (its reports in `reports`)."""
    behave_code = int(argv[0]) if argv else 1
    return exit_code(behave_code, read(reports) if behave_code != 0 else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
