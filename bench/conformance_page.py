"""reports/conformance.html: the conformance table as one self-contained page (inline CSS, no
script, no external asset: it works from file://).

One row per scenario, one column per target and version, each cell coloured by its outcome; a
FAIL, known or harness cell shows the first line of the failure and opens (``<details>``) to the
whole message, the known issue's title and a relative link to that run's evidence folder. Above
the table: the totals per column and the columns that were not measured, with why. Every text
from a run is escaped (html.escape).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import quote

from bench.conformance_table import LEGEND, TOTALS_HEADER, column, known_ids, scenario_rows, short, totals

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f2f2f2; position: sticky; top: 0; }
td { max-width: 36em; overflow-wrap: anywhere; }
td.scenario { min-width: 20em; max-width: 30em; }
td.passed { background: #d8f0d8; }
td.known { background: #fff0c2; }
td.failed { background: #f8c8c8; }
td.harness { background: #e2d4f4; }
td.skipped, td.absent { background: #eeeeee; color: #666; }
details pre { white-space: pre-wrap; max-width: 60em; font-size: 12px; }
summary { cursor: pointer; }
.missing { color: #a00; }
"""
DETAILS = ("known", "failed", "harness")  # the outcomes whose cell opens to the whole message


def _cell(entry: dict | None, evidence_base: str, titles: dict[str, str]) -> str:
    if entry is None:
        return '<td class="absent">-</td>'
    outcome, text = entry["outcome"], short(entry)
    if outcome not in DETAILS:
        return f'<td class="{outcome}">{escape(text)}</td>'
    first = text.splitlines()[0]  # FAIL/harness: the failure's first line; known: the id and that line
    if outcome == "known" and (entry.get("message") or "").strip():
        first += ": " + entry["message"].strip().splitlines()[0]
    parts = [f"<summary>{escape(first)}</summary>"]
    if entry.get("issue"):
        parts.append(f"<p>{escape(entry['issue'])}: {escape(titles.get(entry['issue'], '?'))}</p>")
    if entry.get("message"):
        parts.append(f"<pre>{escape(entry['message'])}</pre>")
    if entry.get("evidence"):
        href = quote(f"{evidence_base}/{entry['evidence']}", safe="/")
        parts.append(f'<p><a href="{escape(href, quote=True)}">evidence: {escape(entry["evidence"])}</a></p>')
    return f'<td class="{outcome}"><details>{"".join(parts)}</details></td>'


def _table(header: Sequence[str], rows: Sequence[str]) -> list[str]:
    return ["<table>", "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>", *rows, "</table>"]


def render(runs: Sequence[dict], titles: dict[str, str] | None = None, not_measured: Sequence[str] = (),
           runs_folder: str = "conformance") -> str:
    """The page; a column's evidence links point into ``runs_folder/<its label>/`` (relative to the page)."""
    titles = titles or {}
    title = "Conformance: the live suite on every target (demo portfolio)"
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
           f"<h1>{escape(title)}</h1>", f"<p>{escape(LEGEND)}</p>"]
    if not_measured:
        out += ["<ul>", *(f'<li class="missing">not measured: {escape(line)}</li>' for line in not_measured), "</ul>"]
    out += _table(TOTALS_HEADER, ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in totals(run)) + "</tr>"
                                  for run in runs])
    bases = [f"{runs_folder}/{run.get('label', column(run))}" for run in runs]
    body = ["<tr>" + f'<td class="scenario">{escape(name)}</td>'
            + "".join(_cell(entry, base, titles) for entry, base in zip(entries, bases)) + "</tr>"
            for name, entries in scenario_rows(runs)]
    out += _table(["scenario", *(column(run) for run in runs)], body)
    named = known_ids(runs)
    if named:
        out += ["<h2>Known issues in the table</h2>", "<ul>",
                *(f"<li>{escape(i)}: {escape(titles.get(i, '?'))}</li>" for i in named), "</ul>"]
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
