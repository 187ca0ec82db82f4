"""The conformance table, read from each column's verdict: one row per scenario, one column per
target and version (reports/conformance.md; bench/conformance_page.py draws the same as HTML).

A column is one run's verdict (support/verdict.py: its ``scenarios``, each with ``outcome`` passed /
skipped / known / failed / harness and ``detail``), with what the conformance command adds:
``label`` (its folder under reports/conformance), ``exit`` and ``wall_seconds``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from support.portfolio_matrix import markdown_table

NOT_OFFERED = "not offered by target "
CELL_LIMIT = 90  # characters of a message in a Markdown cell; the whole message is in the run's verdict.json
OUTCOMES = ("passed", "known", "failed", "harness", "skipped")
TOTALS_HEADER = ["target", "run", "wall s", "passed", "known", "FAIL", "harness", "skipped"]
LEGEND = ("pass: passed; known KI-...: failed as a registered known issue (features/known_issues.toml); "
          "FAIL: failed without one; harness: the suite could not finish the scenario; not offered: "
          "the target lacks the feature the scenario needs (@needs.<feature>); skipped: RAM gate or "
          "portfolio rule; -: not in that run.")


def column(run: dict) -> str:
    """A column's title: the target and the version the run reported, e.g. "mlx_lm 0.32.2"."""
    return f"{run.get('target', '?')} {run.get('sut_version', '?')}"


def counts(run: dict) -> dict[str, int]:
    found = dict.fromkeys(OUTCOMES, 0)
    for o in run.get("scenarios", []):
        found[o["outcome"]] += 1
    return found


def totals(run: dict) -> list[str]:
    """A column's line of the totals table (TOTALS_HEADER)."""
    c = counts(run)
    verdict = "passes" if run.get("exit") == 0 else f"FAILS (exit {run.get('exit')})"
    return [column(run), verdict, str(run.get("wall_seconds", "?")),
            *(str(c[k]) for k in ("passed", "known", "failed", "harness", "skipped"))]


def scenario_rows(runs: Sequence[dict]) -> list[tuple[str, list[dict | None]]]:
    """(scenario, its entry in each run or None) in the order the runs met them; a name met again
    in one run is that name's next row."""
    keyed = []
    for run in runs:
        met: Counter[str] = Counter()
        mine = {}
        for o in run.get("scenarios", []):
            met[o["scenario"]] += 1
            mine[(o["scenario"], met[o["scenario"]])] = o
        keyed.append(mine)
    order = list(dict.fromkeys(key for mine in keyed for key in mine))
    return [(key[0], [mine.get(key) for mine in keyed]) for key in order]


def short(entry: dict | None) -> str:
    """One scenario's result on one target in a few words (pass, known KI-..., FAIL: its first line...)."""
    if entry is None:
        return "-"
    outcome, detail = entry["outcome"], entry.get("detail") or ""
    if outcome == "passed":
        return "pass"
    if outcome == "known":
        return f"known {detail}"
    if outcome == "skipped":
        if detail.startswith(NOT_OFFERED):
            return "not offered: " + detail.split(": ", 1)[-1]
        return f"skipped: {detail}"
    return f"{'FAIL' if outcome == 'failed' else 'harness'}: {detail}"


def cell(entry: dict | None) -> str:
    """A Markdown cell: :func:`short`, clipped to CELL_LIMIT characters of the message."""
    text = short(entry)
    if entry is None or entry["outcome"] not in ("failed", "harness"):
        return text
    label, _, detail = text.partition(": ")
    return f"{label}: {detail[:CELL_LIMIT]}" + ("..." if len(detail) > CELL_LIMIT else "")


def known_ids(runs: Sequence[dict]) -> list[str]:
    return sorted({o["detail"] for run in runs for o in run.get("scenarios", []) if o["outcome"] == "known"})


def render(runs: Sequence[dict], titles: dict[str, str] | None = None, not_measured: Sequence[str] = ()) -> str:
    """reports/conformance.md: the columns that were not measured and why, the totals per column,
    the table (scenarios in the order the runs met them) and the known issues it names."""
    titles = titles or {}
    out = ["# Conformance: the live suite on every target (demo portfolio)", "", LEGEND, ""]
    if not_measured:
        out += [f"- not measured: {line}" for line in not_measured] + [""]
    out += markdown_table(TOTALS_HEADER, [totals(run) for run in runs]) + [""]
    body = [[name, *(cell(entry) for entry in entries)] for name, entries in scenario_rows(runs)]
    out += [*markdown_table(["scenario", *(column(r) for r in runs)], body), ""]
    named = known_ids(runs)
    if named:
        out += ["## Known issues in the table", ""] + [f"- {i}: {titles.get(i, '?')}" for i in named] + [""]
    return "\n".join(out)
