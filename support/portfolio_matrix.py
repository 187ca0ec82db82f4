"""The portfolio at a glance: models x areas, each cell pass / FAIL / known issue / skipped.

The area of a scenario comes from its tags (``@server``, ``@streaming``, ``@parity``, ``@cli``,
``@performance``); a scenario counts in every area it is tagged with. Its model is the model
of its portfolio row; scenarios without a row (e.g. "an unknown model fails") form one row of
their own. Below the table: the models discovery excluded and the models the RAM gate held
back, each with its reason. Printed at the end of a live run and written to
``reports/portfolio.md``; the outcomes it is made of, with the run's models, exclusions and
gates, go to ``reports/matrix.json`` (:meth:`Matrix.document`), from which several runs' matrix
is recomputed when their results are merged (support/merge.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

AREAS: tuple[tuple[str, str], ...] = (("server", "server"), ("streaming", "streaming"),
                                      ("parity", "parity"), ("cli", "CLI"), ("performance", "speed"),
                                      ("embeddings", "embeddings"),
                                      ("vision", "vision"), ("speech", "speech"))
NO_MODEL = "(not per model)"
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
_FAILED = {"failed", "error", "hook_error", "cleanup_error", "undefined", "pending", "pending_warn"}
_SKIPPED = {"skipped", "untested", "executing"}
LEGEND = ("pass: every scenario that ran passed (n = how many); FAIL n/m: n of m scenarios that ran "
          "failed without a registered issue; known KI-...: failures, all registered in "
          "features/known_issues.toml (n/m failed); skipped: none ran (RAM gate, portfolio rule); "
          "-: no scenario of this area for the model")


def outcome_status(status: object) -> str:
    """behave's scenario status (enum or name) as passed / failed / skipped."""
    name = getattr(status, "name", status)
    name = str(name).lower()
    if name == "passed":
        return PASSED
    if name in _FAILED:
        return FAILED
    return SKIPPED


@dataclass(frozen=True)
class Outcome:
    model: str | None
    areas: frozenset[str]
    status: str  # passed / failed / skipped
    issue: str | None = None  # a registered known issue explains the failure
    feature: str = ""  # the feature file and the scenario's name: which scenario this is
    scenario: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.feature, self.scenario


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table as lines, columns padded to their widest cell (a "|" in a cell is escaped)."""
    rows = [[c.replace("|", "\\|") for c in row] for row in [header, *body]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    return [line(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows[1:])]


def areas_of(tags: Iterable[str]) -> frozenset[str]:
    names = {tag.lstrip("@") for tag in tags}
    return frozenset(area for area, _ in AREAS if area in names)


class Matrix:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def add(self, model: str | None, tags: Iterable[str], status: object, issue: str | None = None,
            feature: str = "", scenario: str = "") -> None:
        """One scenario's result; ``issue`` is the known issue id when a registered issue explains it."""
        state = outcome_status(status)
        self.outcomes.append(Outcome(model, areas_of(tags), state, issue if state == FAILED else None,
                                     feature, scenario))

    def cell(self, model: str | None, area: str) -> str:
        mine = [o for o in self.outcomes if o.model == model and area in o.areas]
        if not mine:
            return "-"
        ran = [o for o in mine if o.status != SKIPPED]
        if not ran:
            return "skipped"
        failed = [o for o in ran if o.status == FAILED]
        unknown = [o for o in failed if o.issue is None]
        if unknown:
            return f"FAIL {len(unknown)}/{len(ran)}"
        if failed:
            issues = ",".join(sorted({o.issue for o in failed if o.issue}))
            return f"known {issues} ({len(failed)}/{len(ran)})"
        return f"pass ({len(ran)})"

    def areas(self) -> list[tuple[str, str]]:
        """The areas with at least one scenario, in AREAS order."""
        seen = set().union(*(o.areas for o in self.outcomes)) if self.outcomes else set()
        return [(area, title) for area, title in AREAS if area in seen]

    def rows(self, models: Sequence[str]) -> list[str | None]:
        """The given models in their order, then models seen but not given, then the no-model row."""
        seen = [o.model for o in self.outcomes]
        extra = sorted({m for m in seen if m is not None and m not in models})
        rows: list[str | None] = list(dict.fromkeys([*models, *extra]))
        if None in seen:
            rows.append(None)
        return rows

    def render(self, models: Sequence[str], excluded: Sequence[tuple[str, str]] = (),
               gated: Mapping[str, str] | None = None, title: str = "Portfolio matrix") -> str:
        """The table, the legend, the excluded and the gated models, as Markdown."""
        gated = gated or {}
        areas = self.areas()
        header = ["model", *[t for _, t in areas]]
        body = [[(m if m is not None else NO_MODEL) + (" (gated)" if m in gated else ""),
                 *[self.cell(m, a) for a, _ in areas]] for m in self.rows(models)]
        out = [f"# {title}", "", *markdown_table(header, body)]
        out += ["", LEGEND, ""]
        out.append(f"## Excluded by discovery ({len(excluded)})")
        out += [f"- {m}: {why}" for m, why in excluded] or ["- none"]
        out += ["", f"## Gated by the RAM budget ({len(gated)})"]
        out += [f"- {m}: {why}" for m, why in sorted(gated.items())] or ["- none"]
        return "\n".join(out) + "\n"

    def document(self, models: Sequence[str], excluded: Sequence[tuple[str, str]] = (),
                 gated: Mapping[str, str] | None = None, title: str = "Portfolio matrix") -> dict:
        """Everything :meth:`render` needs, as JSON-ready data (``reports/matrix.json``)."""
        return {"title": title, "models": list(models), "excluded": [list(e) for e in excluded],
                "gated": dict(gated or {}),
                "outcomes": [{"feature": o.feature, "scenario": o.scenario, "model": o.model,
                              "areas": sorted(o.areas), "status": o.status, "issue": o.issue}
                             for o in self.outcomes]}

    @classmethod
    def from_document(cls, doc: Mapping) -> "Matrix":
        matrix = cls()
        matrix.outcomes = [Outcome(o["model"], frozenset(o["areas"]), o["status"], o.get("issue"),
                                   o.get("feature", ""), o.get("scenario", "")) for o in doc["outcomes"]]
        return matrix

    def counts(self) -> dict[str, int]:
        """Scenario outcomes: passed, failed (unexpected), known, skipped."""
        out = {"passed": 0, "failed": 0, "known": 0, "skipped": 0}
        for o in self.outcomes:
            key = "known" if o.status == FAILED and o.issue else o.status
            out[key] += 1
        return out


def render_document(doc: Mapping) -> str:
    """The Markdown matrix of a :meth:`Matrix.document` (one run's, or several runs' merged)."""
    return Matrix.from_document(doc).render(doc["models"], [tuple(e) for e in doc["excluded"]],
                                            doc["gated"], title=doc["title"])
