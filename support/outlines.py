"""Scenario Outlines whose Examples are filled at runtime: one row per portfolio model.

A portfolio outline is tagged ``@portfolio.<kind>`` (``chat``, ``text``) and has one
Examples table with the single heading ``model`` and no rows::

    @portfolio.chat
    Scenario Outline: The server answers a chat request (<model>)
      Given ...
      Examples:
        | model |

Why so early: behave 1.3 calls the formatters' ``feature()`` before the
``before_feature`` hook, and allure-behave wraps each generated scenario inside
``feature()``; rows added later are not reported. So the suite's runner
(support/runner.py) fills every table between parsing and running, before any formatter.

Filling uses ``Table.clear``/``Table.add_row``: they mark the table modified, so the
outline rebuilds its scenarios. Every added row gets the line of the table's heading.

Naming: behave substitutes ``<model>`` in the outline's name for each generated
scenario. An outline named without it gets `` (<model>)`` appended, because behave's
default annotation (``scenario_outline_annotation_schema``, ``{name} -- @{row.id}
{examples.name}``) only shows the row number (``@1.2``), never the row's values.

Selecting: ``--name`` (the model id is in every name) and ``--tags`` work on the rows.

Caveats (behave 1.3.3):
* behave skips every hook under ``--dry-run`` (``Runner.should_run_hook``), so a hook
  cannot fill the rows of a dry run; the suite's runner (support/runner.py) fills them
  between parsing and running instead, also under ``--dry-run``.
* ``file.feature:LINE`` selection happens while parsing, before the rows exist, so
  :func:`select_locations` applies it again to the filled outlines (the runner calls it):
  the line of an outline selects all its rows, the line of a scenario that scenario.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from behave.model import Feature, ScenarioOutline, Table
from behave.runner_util import FeatureScenarioLocationCollector2

from support.errors import ConfigError

PORTFOLIO_TAG_PREFIX = "portfolio."
MODEL_COLUMN = "model"
MODEL_PLACEHOLDER = f"<{MODEL_COLUMN}>"


def portfolio_outlines(features: Iterable[Feature]) -> list[tuple[ScenarioOutline, str]]:
    """Each outline tagged ``@portfolio.<kind>`` (also inside rules) with its kind."""
    found = []
    for feature in features:
        for outline in feature.iter_scenario_outlines():
            kinds = [tag[len(PORTFOLIO_TAG_PREFIX):] for tag in outline.tags
                     if tag.startswith(PORTFOLIO_TAG_PREFIX)]
            if len(kinds) > 1:
                raise ConfigError(f"{outline.location}: one portfolio tag per outline, found "
                                  + ", ".join(f"@{PORTFOLIO_TAG_PREFIX}{k}" for k in kinds))
            if kinds:
                found.append((outline, kinds[0]))
    return found


def fill_portfolio_outlines(features: Iterable[Feature],
                            rows: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Set each portfolio outline's Examples to one row per model id of its kind.

    Existing rows are replaced. Returns the number of rows added per kind.
    Nothing is changed when any outline is unusable (unknown kind, wrong table).
    """
    work = []
    for outline, kind in portfolio_outlines(features):
        if kind not in rows:
            known = ", ".join(f"@{PORTFOLIO_TAG_PREFIX}{k}" for k in sorted(rows)) or "none"
            raise ConfigError(f"{outline.location}: unknown portfolio tag "
                              f"@{PORTFOLIO_TAG_PREFIX}{kind} (known: {known})")
        work.append((outline, _model_table(outline), rows[kind], kind))

    added: Counter[str] = Counter()
    for outline, table, model_ids, kind in work:
        table.clear()
        for model_id in model_ids:
            table.add_row([model_id], line=table.line)
        if MODEL_PLACEHOLDER not in outline.name:
            outline.name = f"{outline.name} ({MODEL_PLACEHOLDER})".lstrip()
        added[kind] += len(model_ids)
    return dict(added)


def select_locations(features: Iterable[Feature], locations: Iterable[Any]) -> None:
    """Mark skipped what ``file.feature:LINE`` locations do not select, as behave's parser does,
    now that the portfolio rows exist. Features given without a line keep all their scenarios."""
    lines: dict[str, list[Any]] = {}
    for location in locations:
        lines.setdefault(location.filename, []).append(location)
    for feature in features:
        chosen = lines.get(feature.filename, [])
        if not chosen or any(not location.line for location in chosen):
            continue
        collector = FeatureScenarioLocationCollector2(feature, filename=feature.filename)
        for location in chosen:
            collector.add_location(location)
        collector.build_feature()


def row_model(scenario) -> str | None:
    """The model of a scenario's portfolio row (None outside the portfolio outlines)."""
    row = getattr(scenario, "_row", None)
    if row is None or MODEL_COLUMN not in row.headings:
        return None
    return row[MODEL_COLUMN]


# Every portfolio has text models; vision, speech and embedding models are optional.
REQUIRED_KINDS = ("chat", "text")


def rows_missing(features: Iterable[Feature], kinds: Sequence[str] = REQUIRED_KINDS) -> list[str]:
    """``file:line @portfolio.<kind>`` of each portfolio outline of `kinds` left without rows."""
    return [f"{outline.location} @{PORTFOLIO_TAG_PREFIX}{kind}"
            for outline, kind in portfolio_outlines(features)
            if kind in kinds and not any(example.table is not None and example.table.rows
                                         for example in outline.examples)]


def _model_table(outline: ScenarioOutline) -> Table:
    """The outline's one Examples table, checked to have the single heading ``model``."""
    tables = [example.table for example in outline.examples]
    if len(tables) != 1 or tables[0] is None or tables[0].headings != [MODEL_COLUMN]:
        raise ConfigError(f"{outline.location}: a portfolio outline needs exactly one "
                          f"Examples table with the single heading | {MODEL_COLUMN} |")
    return tables[0]
