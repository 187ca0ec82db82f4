"""Recorded runs of the suite compared scenario by scenario: two releases (`make compare`) or many
(`make matrix`).

A run is the reports folder of one live run (its ``verdict.json``, whose ``scenarios`` list holds
every scenario's outcome, support/verdict.py). Comparing two runs sorts each scenario as a **new
failure** (passed in the base, fails in the candidate), a **fix** (the reverse), an **unchanged
failure**, **no longer tested** (ran in the base, not in the candidate: a shrunken run is no pass)
**changed failure** (fails in both, booked as different known issues), **no longer tested** (ran in
the base, not in the candidate: a shrunken run is no pass) or **newly tested**. New failures,
scenarios no longer tested and failures that changed into an unregistered one are regressions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import verdict

PASSED, FAILED, SKIPPED, HARNESS, ABSENT = "passed", "failed", "skipped", "harness", "absent"
RAN = (PASSED, FAILED, HARNESS)


@dataclass(frozen=True)
class Outcome:
    """How one scenario ended in one run; ``status`` HARNESS is a failure that is not a failed check
    of the SUT (support/verdict.py), ABSENT a scenario the run did not have."""

    scenario: str
    status: str
    model: str | None = None
    tags: tuple[str, ...] = ()
    message: str = ""
    issue: str | None = None  # the registered known issue it was booked as
    evidence: Path | None = None  # the failure's evidence folder

    @property
    def failed(self) -> bool:
        return self.status in (FAILED, HARNESS)


@dataclass
class Run:
    """One release's run: ``error`` says why it has no results (it did not finish)."""

    name: str
    reports: Path
    version: str | None = None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    error: str | None = None

    def outcome(self, scenario: str) -> Outcome:
        return self.outcomes.get(scenario) or Outcome(scenario, ABSENT)


def load_run(name: str, reports: Path, error: str | None = None) -> Run:
    """The run recorded in ``reports`` (its verdict.json); a run without one carries ``error``."""
    recorded = verdict.read(reports)
    if recorded is None:
        return Run(name, reports, error=error or f"no {verdict.VERDICT.name} in {reports}: the run did not finish")
    outcomes = {}
    for item in recorded.get("scenarios", []):
        status = item["status"]
        if status == FAILED and not item.get("product", True):
            status = HARNESS
        outcomes[item["scenario"]] = Outcome(
            item["scenario"], status, item.get("model"), tuple(item.get("tags", ())), item.get("message") or "",
            item.get("issue"), reports / item["evidence"] if item.get("evidence") else None)
    problems = recorded.get("harness_problems") or []
    return Run(name, reports, recorded.get("sut_version"), outcomes,
               error=error or ("; ".join(problems) if problems else None))


@dataclass(frozen=True)
class Change:
    scenario: str
    base: Outcome
    candidate: Outcome


@dataclass
class Comparison:
    base: Run
    candidate: Run
    new_failures: list[Change] = field(default_factory=list)
    fixes: list[Change] = field(default_factory=list)
    unchanged_failures: list[Change] = field(default_factory=list)
    changed_failures: list[Change] = field(default_factory=list)  # fail in both, booked as different issues
    no_longer_tested: list[Change] = field(default_factory=list)
    newly_tested: list[Change] = field(default_factory=list)
    passed_in_both: int = 0

    @property
    def regressed(self) -> bool:
        """A new failure, a scenario no longer tested, or a failure that changed into one no
        registered issue explains."""
        return bool(self.new_failures or self.no_longer_tested
                    or any(c.candidate.issue is None for c in self.changed_failures))

    @property
    def undecided(self) -> str | None:
        """Why the comparison cannot be trusted (a run that did not finish), or None."""
        broken = [f"{run.name}: {run.error}" for run in (self.base, self.candidate) if run.error]
        return "; ".join(broken) or None

    def exit_code(self) -> int:
        """1 on a regression, 2 when a run did not finish, else 0."""
        return 1 if self.regressed else 2 if self.undecided else 0


def compare(base: Run, candidate: Run) -> Comparison:
    """Sort every scenario of either run by how it changed from base to candidate."""
    result = Comparison(base, candidate)
    for name in sorted(set(base.outcomes) | set(candidate.outcomes)):
        before, after = base.outcome(name), candidate.outcome(name)
        change = Change(name, before, after)
        if before.status in RAN and after.status not in RAN:
            result.no_longer_tested.append(change)
        elif before.status not in RAN and after.status in RAN:
            result.newly_tested.append(change)
        elif before.failed and after.failed:
            same = before.issue == after.issue and (before.issue or before.status == after.status)
            (result.unchanged_failures if same else result.changed_failures).append(change)
        elif before.failed:
            result.fixes.append(change)
        elif after.failed:
            result.new_failures.append(change)
        elif before.status == PASSED:
            result.passed_in_both += 1
    return result


def _short(message: str, limit: int = 300) -> str:
    """The first lines of a failure message as one Markdown-safe line."""
    text = " ".join(message.split())
    return (text[:limit] + " ...") if len(text) > limit else text


def _link(outcome: Outcome, where: Path) -> str:
    if outcome.evidence is None:
        return ""
    return f" ([evidence]({Path(os.path.relpath(outcome.evidence, where)).as_posix()}))"


def describe(outcome: Outcome, where: Path) -> str:
    """An outcome for a report line: the status, the issue it is booked as, the message, the evidence."""
    if outcome.status == ABSENT:
        return "not in the run"
    if not outcome.failed:
        return outcome.status
    booked = f" as {outcome.issue}" if outcome.issue else (" (harness failure)" if outcome.status == HARNESS else "")
    return f"failed{booked}: {_short(outcome.message)}{_link(outcome, where)}"


SECTIONS = (("new_failures", "New failures (passed in {base}, fail in {candidate})"),
            ("no_longer_tested", "No longer tested (ran in {base}, not in {candidate})"),
            ("fixes", "Fixes (failed in {base}, pass in {candidate})"),
            ("changed_failures", "Changed failures (fail in both, as different issues; unregistered in {candidate} is a regression)"),
            ("unchanged_failures", "Unchanged failures (fail in both, as the same issue)"),
            ("newly_tested", "Newly tested (not in {base}'s run)"))


def render_markdown(comparison: Comparison, where: Path) -> str:
    """reports/compare.md; ``where`` is the folder it is written to (evidence links are relative)."""
    base, candidate = comparison.base, comparison.candidate
    names = {"base": base.name, "candidate": candidate.name}
    verdict_line = ("REGRESSION" if comparison.regressed else
                    "UNDECIDED" if comparison.undecided else "no regression")
    lines = [f"# mlx-knife {candidate.name} compared with {base.name}: {verdict_line}", "",
             f"- base: {base.name} (reports {Path(os.path.relpath(base.reports, where)).as_posix()})",
             f"- candidate: {candidate.name} (reports {Path(os.path.relpath(candidate.reports, where)).as_posix()})",
             f"- passed in both: {comparison.passed_in_both}"]
    if comparison.undecided:
        lines.append(f"- a run did not finish: {comparison.undecided}")
    for attribute, title in SECTIONS:
        changes = getattr(comparison, attribute)
        lines += ["", f"## {title.format(**names)}: {len(changes)}", ""]
        for change in changes:
            if attribute in ("new_failures", "newly_tested"):
                lines.append(f"- {change.scenario}: {describe(change.candidate, where)}")
            elif attribute in ("fixes", "no_longer_tested"):
                lines.append(f"- {change.scenario}: {describe(change.base, where)}")
            else:
                lines.append(f"- {change.scenario}:\n  - {base.name}: {describe(change.base, where)}"
                             f"\n  - {candidate.name}: {describe(change.candidate, where)}")
    return "\n".join(lines) + "\n"


def _outcome_json(outcome: Outcome) -> dict:
    return {"status": outcome.status, "issue": outcome.issue, "message": outcome.message,
            "evidence": str(outcome.evidence) if outcome.evidence else None}


def to_json(comparison: Comparison) -> dict:
    """reports/compare.json: the same sections, every outcome in full."""
    doc = {"base": {"name": comparison.base.name, "version": comparison.base.version,
                    "reports": str(comparison.base.reports), "error": comparison.base.error},
           "candidate": {"name": comparison.candidate.name, "version": comparison.candidate.version,
                         "reports": str(comparison.candidate.reports), "error": comparison.candidate.error},
           "regressed": comparison.regressed, "passed_in_both": comparison.passed_in_both}
    for attribute, _ in SECTIONS:
        doc[attribute] = [{"scenario": c.scenario, "base": _outcome_json(c.base),
                           "candidate": _outcome_json(c.candidate)} for c in getattr(comparison, attribute)]
    return doc


# --- the version matrix ------------------------------------------------------------------------

def cell(outcome: Outcome) -> str:
    """One matrix cell: pass, FAIL, the known issue's id, harness, skip or - (not in the run)."""
    if outcome.status == PASSED:
        return "pass"
    if outcome.status == FAILED:
        return outcome.issue or "FAIL"
    return {HARNESS: "harness", SKIPPED: "skip"}.get(outcome.status, "-")


def matrix(runs: list[Run]) -> dict[str, dict[str, str]]:
    """Scenario -> run name -> cell, for every scenario any run has."""
    names = sorted({name for run in runs for name in run.outcomes})
    return {name: {run.name: cell(run.outcome(name)) for run in runs} for name in names}


def render_matrix(runs: list[Run], findings: list[str] = ()) -> str:
    """reports/matrix.md: scenarios x releases (only the scenarios whose cells differ or fail are
    listed, with a count of those passing everywhere), the runs that did not finish, then the
    registry findings (support/history.py)."""
    table = matrix(runs)
    shown = {name: row for name, row in table.items() if set(row.values()) != {"pass"}}
    header = ["scenario", *(run.name for run in runs)]
    lines = [f"# Version matrix: {', '.join(run.name for run in runs)}", "",
             f"{len(table) - len(shown)} scenario(s) pass on every release; the others:", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in shown.items():
        lines.append("| " + " | ".join([name.replace("|", "\\|"), *row.values()]) + " |")
    broken = [run for run in runs if run.error]
    if broken:
        lines += ["", "## Runs that did not finish", ""]
        lines += [f"- {run.name}: {run.error}" for run in broken]
    lines += ["", "## The registry checked against the matrix", ""]
    lines += [f"- {finding}" for finding in findings] or ["- every entry fails exactly inside its `sut` range"]
    return "\n".join(lines) + "\n"


def matrix_json(runs: list[Run], findings: list[str] = ()) -> dict:
    return {"runs": [{"name": r.name, "version": r.version, "reports": str(r.reports), "error": r.error}
                     for r in runs],
            "matrix": matrix(runs), "registry_findings": list(findings)}


def write(folder: Path, stem: str, markdown: str, document: dict) -> tuple[Path, Path]:
    """``folder/stem.md`` and ``folder/stem.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / f"{stem}.md", folder / f"{stem}.json"
    md.write_text(markdown, encoding="utf-8")
    js.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return md, js
