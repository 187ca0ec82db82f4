"""The known-issue registry checked against runs of several releases (the version matrix).

An entry's ``sut`` range says on which releases its failure happens. Runs of other releases
show whether that is so: an entry whose failure also happens on a release **outside** its range
(and is booked as no other entry there), or that does **not fail** on a release inside its range
although the run exercised it (a scenario it covers ran and passed), is a finding. Runs are
booked against the registry as it is now (``rebook``), so a changed registry needs no new run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .compare import FAILED, PASSED, Outcome, Run
from .known_issues import KnownIssue, Registry


def rebook(run: Run, registry: Registry) -> Run:
    """The run with every failed check booked as the registry matches it now (on the run's version)."""
    if run.version is None:
        return run
    outcomes = {}
    for name, outcome in run.outcomes.items():
        if outcome.status == FAILED:
            issue = registry.match(outcome.model or "", name, outcome.tags, run.version, outcome.message)
            outcome = replace(outcome, issue=issue.id if issue else None)
        outcomes[name] = outcome
    return replace(run, outcomes=outcomes)


def _covers(entry: KnownIssue, outcome: Outcome, version: str) -> bool:
    """The entry, taken for every release, covers the failure (its scenario and its message)."""
    return replace(entry, sut=None).matches(outcome.model or "", outcome.scenario, outcome.tags,
                                            version, outcome.message)


@dataclass(frozen=True)
class Finding:
    issue: str
    release: str
    kind: str  # "outside": fails outside its range; "stopped": does not fail inside it
    scenarios: tuple[str, ...]

    def __str__(self) -> str:
        listed = "; ".join(self.scenarios[:3]) + (f" (+{len(self.scenarios) - 3} more)" if len(self.scenarios) > 3 else "")
        if self.kind == "outside":
            return (f"{self.issue} also fails on {self.release}, outside its sut range: {listed} "
                    "(widen the range, or register the older defect)")
        return (f"{self.issue} does not fail on {self.release}, inside its sut range: {listed} passed "
                "(where it fails on another release; narrow the range: fixed there?)")


def check(registry: Registry, runs: list[Run]) -> list[Finding]:
    """Every entry's range against every finished run of a known version. Whether an entry "does not
    fail" is judged on the scenarios it failed in on some release of these runs (an entry's globs
    may cover more scenarios than the one defect fails)."""
    finished = [rebook(run, registry) for run in runs if run.version is not None and not run.error]
    failed_in = {entry.id: {o.scenario for run in finished for o in run.outcomes.values()
                            if o.status == FAILED and _covers(entry, o, run.version)}
                 for entry in registry.entries}
    findings = []
    for run in finished:
        for entry in registry.entries:
            if entry.sut is None or run.version in entry.sut:
                ran = [run.outcome(name) for name in sorted(failed_in[entry.id])]
                passed = [o.scenario for o in ran if o.status == PASSED]
                if passed and not any(o.issue == entry.id for o in ran):  # (a scenario that failed
                    findings.append(Finding(entry.id, run.name, "stopped", tuple(passed)))  # earlier hides it)
            else:
                outside = [o.scenario for o in run.outcomes.values()
                           if o.status == FAILED and o.issue is None and _covers(entry, o, run.version)]
                if outside:
                    findings.append(Finding(entry.id, run.name, "outside", tuple(sorted(outside))))
    return findings


def seen_on(registry: Registry, runs: list[Run]) -> dict[str, list[str]]:
    """Entry id -> the releases on which its failure happened (whatever its range says)."""
    seen: dict[str, list[str]] = {entry.id: [] for entry in registry.entries}
    for run in runs:
        if run.version is None or run.error:
            continue
        for entry in registry.entries:
            if any(o.status == FAILED and _covers(entry, o, run.version)
                   for o in run.outcomes.values()):
                seen[entry.id].append(run.name)
    return seen
