"""The Allure side of a live run: labels, known-issue marks, categories and the environment.

Labels: every scenario gets the epic ``mlx-e2e acceptance`` and a story, its name with the model
id put back as ``<model>`` (so the Behaviors tree groups one outline's rows); allure-behave
already gives the feature, the model parameter, severity tags (``@critical``...) and issue
links (``@allure.issue:N`` with ``-D AllureFormatter.issue_pattern``).

Known issues: behave fixes a step's error message after the step hooks, so a hook cannot reword
it. While a failing scenario's Allure result is still open (``after_scenario``), the hook adds
the labels ``known_issue`` (e.g. ``KI-003``) and ``known_issue_kind`` (product / model); once
the results are written (``after_all``, and again idempotently by ``make report``),
:func:`mark_known_results` prefixes those results' message with ``KNOWN PRODUCT DEFECT KI-003:``
or ``KNOWN MODEL QUALITY ISSUE KI-007:``. The failure stays a failure, with all of its message;
:data:`CATEGORIES` sorts it by that prefix.

Categories (``categories.json`` in the results folder, Allure 2 format; Allure 3 takes the same
rules from its config, which :func:`write_allure3_config` writes): known product defects, known
model quality issues, harness problems (the suite could not measure: timeouts, servers that did
not start, errors in the suite's own code), and product defects (any other failed assertion).
The rules exclude each other, and each regex means the same in Allure 2 (Java, whole message)
and Allure 3 (JavaScript, search from ``^``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

import allure
import allure_behave.formatter
import allure_commons
from allure_commons.model2 import Label

EPIC = "mlx-e2e acceptance"
KNOWN_LABEL = "known_issue"
KIND_LABEL = "known_issue_kind"
PREFIX = {"product": "KNOWN PRODUCT DEFECT", "model": "KNOWN MODEL QUALITY ISSUE"}
_FAILING = ("failed", "broken")
# Mutually exclusive rules, decided by the exception's type (support/errors.py), never by message
# text: a failed check of the SUT raises AssertionError (Allure status "failed", message
# "AssertionError: ..."); the suite's own HarnessError, SuiteError or any other error is
# "broken" with its own type first. Allure 2 puts a result in every category that matches,
# Allure 3 in the first.
CATEGORIES: list[dict] = [
    {"name": "Known product defects",
     "description": "Failures of mlx-knife registered in features/known_issues.toml (kind product).",
     "matchedStatuses": list(_FAILING), "messageRegex": r"^KNOWN PRODUCT DEFECT [\s\S]*"},
    {"name": "Known model quality issues",
     "description": "A model's registered quality issue (features/known_issues.toml, kind model).",
     "matchedStatuses": list(_FAILING), "messageRegex": r"^KNOWN MODEL QUALITY ISSUE [\s\S]*"},
    {"name": "Harness problems",
     "description": "The suite could not measure: its HarnessError (a reference decoder that failed, a "
                    "server that did not start, a spec the suite does not know) or an error in the "
                    "suite's own code: any exception but a failed check (AssertionError).",
     "matchedStatuses": list(_FAILING),
     "messageRegex": r"^(?!KNOWN )(?!AssertionError)[\s\S]*"},
    {"name": "Product defects",
     "description": "A failed check (AssertionError) that no known issue explains: a new defect of the "
                    "SUT, a hang or timeout of the SUT included (or a check to fix). make e2e fails on these.",
     "matchedStatuses": ["failed"],
     "messageRegex": r"^AssertionError[\s\S]*"},
]


# --- the formatter --------------------------------------------------------------------------

class AllureFormatter(allure_behave.formatter.AllureFormatter):
    """allure-behave 2.16.2 with scenarios inside `Rule:` reported too: its ``feature()`` wraps only
    a feature's own scenarios, so every scenario under a rule vanished from the results (and an
    attachment in one of its steps raised ``KeyError: None``). behave.ini names this class."""

    def feature(self, feature):
        super().feature(feature)
        for rule in feature.rules:
            self._wrap_scenario(rule.scenarios)


# --- while a scenario runs (hooks) --------------------------------------------------------

class _DynamicLabels:
    """The ``add_label`` hook allure-behave 2.16 lacks: without it ``allure.dynamic.label``,
    ``.epic`` and ``.story`` do nothing. Adds the labels to the open result of its formatter."""

    def __init__(self, listener) -> None:
        self.listener = listener

    @allure_commons.hookimpl
    def add_label(self, label_type, labels):
        test = self.listener.logger.get_test(None)
        if test is not None:
            test.labels.extend(Label(name=label_type, value=value) for value in labels)


def enable_dynamic_labels(formatters: Iterable[object]) -> list[str]:
    """Make ``allure.dynamic.label`` work for the run's Allure formatters; returns the plugin names."""
    names = []
    for formatter in formatters:
        listener = getattr(formatter, "listener", None)
        if type(formatter).__name__ != "AllureFormatter" or listener is None or hasattr(listener, "add_label"):
            continue
        name = f"mlx-e2e-dynamic-labels-{id(listener)}"
        if not allure_commons.plugin_manager.has_plugin(name):
            allure_commons.plugin_manager.register(_DynamicLabels(listener), name=name)
        names.append(name)
    return names


def disable_dynamic_labels(names: Iterable[str]) -> None:
    for name in names:
        if allure_commons.plugin_manager.has_plugin(name):
            allure_commons.plugin_manager.unregister(name=name)


def story_of(scenario_name: str, model: str | None) -> str:
    """The scenario's name without behave's row annotation, its model id shown as ``<model>``."""
    name = scenario_name.split(" -- @", 1)[0].strip()
    return name.replace(model, "<model>") if model else name


def label_open_test(scenario_name: str, model: str | None) -> None:
    """Epic and story for the scenario whose Allure result is open (no-op without Allure)."""
    allure.dynamic.epic(EPIC)
    allure.dynamic.story(story_of(scenario_name, model))


def mark_open_test_known(issue_id: str, kind: str, link: str | None = None) -> None:
    """Label the open result as a registered known issue; link the upstream issue when known."""
    allure.dynamic.label(KNOWN_LABEL, issue_id)
    allure.dynamic.label(KIND_LABEL, kind)
    if link:
        allure.dynamic.link(link, name=f"{issue_id} upstream")


# --- after the run (files) ---------------------------------------------------------------

def results_dir_of(formatters: Iterable[object]) -> Path | None:
    """Where the Allure formatter of this run writes, or None when it does not run."""
    for formatter in formatters:
        if type(formatter).__name__ == "AllureFormatter":
            name = getattr(getattr(formatter, "stream_opener", None), "name", None)
            if name:
                return Path(name)
    return None


def known_prefix(issue_id: str, kind: str) -> str:
    return f"{PREFIX.get(kind, PREFIX['product'])} {issue_id}: "


def _label(result: dict, name: str) -> str | None:
    return next((lab.get("value") for lab in result.get("labels", []) if lab.get("name") == name), None)


def mark_known_results(results_dir: Path) -> list[str]:
    """Prefix the message of every failing result labelled as a known issue; idempotent.

    Returns the ids of the results it changed (already marked ones are left alone).
    """
    changed = []
    for path in sorted(Path(results_dir).glob("*-result.json")):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # gone, or still being written by another run sharing the folder: not ours
        issue = _label(result, KNOWN_LABEL)
        if issue is None or result.get("status") not in _FAILING:
            continue
        prefix = known_prefix(issue, _label(result, KIND_LABEL) or "product")
        details = result.setdefault("statusDetails", {})
        message = details.get("message") or ""
        if message.startswith(prefix):
            continue
        details["message"] = prefix + message
        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        part.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
        os.replace(part, path)  # a reader never sees half a file
        changed.append(result.get("uuid", path.name))
    return changed


def categories_of(status: str, message: str | None, categories: list[dict] = CATEGORIES) -> list[str]:
    """Every category whose rule matches a result (Allure 2 takes all, Allure 3 the first)."""
    return [cat["name"] for cat in categories
            if status in cat.get("matchedStatuses", [status])
            and re.fullmatch(cat.get("messageRegex", r"[\s\S]*"), message or "")]


def write_categories(results_dir: Path) -> Path:
    path = Path(results_dir) / "categories.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(CATEGORIES, indent=2) + "\n", encoding="utf-8")
    return path


def _escape(text: str, key: bool = False) -> str:
    """java.util.Properties escaping (keys also escape spaces, ``=`` and ``:``)."""
    out = str(text).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if key:
        out = out.replace(" ", "\\ ").replace("=", "\\=").replace(":", "\\:")
    return out


def properties_text(values: Mapping[str, object]) -> str:
    """``key=value`` lines in the order given; None values are left out."""
    return "".join(f"{_escape(k, key=True)}={_escape(str(v))}\n" for k, v in values.items() if v is not None)


_UNESCAPE = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t", " ": " ", "=": "=", ":": ":"}


def properties_values(text: str) -> dict[str, str]:
    """The ``key=value`` lines :func:`properties_text` writes, read back (its inverse)."""
    values = {}
    for line in text.splitlines():
        key: list[str] = []
        value: list[str] = []
        part, escaped = key, False
        for char in line:
            if escaped:
                part.append(_UNESCAPE.get(char, char))
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "=" and part is key:
                part = value
            else:
                part.append(char)
        if part is value:
            values["".join(key)] = "".join(value)
    return values


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def run_environment(*, sut: str, sut_version: str, portfolio: str, budget: str,
                    shard: tuple[int, int] | None, machine: Mapping, sut_title: str = "mlx-knife") -> dict[str, str]:
    """What environment.properties says about a run (mlx and mlx-lm as installed beside the suite)."""
    return {
        "SUT": f"{sut_title} {sut_version}",
        "SUT.command": sut,
        "mlx": _version("mlx"),
        "mlx-lm": _version("mlx-lm"),
        "Python": sys.version.split()[0],
        "OS": str(machine.get("os", "")),
        "CPU": f"{machine.get('cpu')} ({machine.get('cores_physical')} cores, "
               f"{machine.get('cores_logical')} threads)",
        "RAM": f"{machine.get('ram_gb')} GB",
        "RAM.budget": budget,
        "portfolio": portfolio,
        "shard": f"{shard[0]}/{shard[1]}" if shard else "all",
    }


def write_environment(results_dir: Path, values: Mapping[str, object]) -> Path:
    path = Path(results_dir) / "environment.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(properties_text(values), encoding="utf-8")
    return path


def write_global_attachment(results_dir: Path, name: str, text: str, kind: str) -> Path:
    """An Allure global attachment (how allure-behave writes ``allure.global_attach``): ``kind``
    "text" or "json"; returns the attachment's file."""
    ext, mime = {"json": ("json", "application/json"), "text": ("txt", "text/plain")}[kind]
    source = Path(results_dir) / f"{uuid.uuid4()}-attachment.{ext}"
    source.write_text(text, encoding="utf-8")
    doc = {"attachments": [{"name": name, "source": source.name, "type": mime}]}
    (Path(results_dir) / f"{uuid.uuid4()}-globals.json").write_text(json.dumps(doc), encoding="utf-8")
    return source


def write_allure3_config(path: Path, name: str = "mlx-e2e acceptance") -> Path:
    """Allure 3 reads categories from its config (not from the results): the same rules."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name, "categories": CATEGORIES}, indent=2) + "\n", encoding="utf-8")
    return path


def finalize(results_dir: Path, environment: Mapping[str, object] | None = None) -> list[str]:
    """categories.json, environment.properties (when given), known-issue marks; returns marked ids."""
    write_categories(results_dir)
    if environment is not None:
        write_environment(results_dir, environment)
    return mark_known_results(results_dir)


def main(argv: list[str]) -> int:
    """``python -m support.allure_results RESULTS_DIR CONFIG_JSON``: ready results for ``allure generate``."""
    if len(argv) != 2:
        print("usage: python -m support.allure_results RESULTS_DIR CONFIG_JSON", file=sys.stderr)
        return 2
    results, config = Path(argv[0]), Path(argv[1])
    if not any(results.glob("*-result.json")):
        print(f"mlx-e2e: no Allure results in {results}: run `make e2e` first", file=sys.stderr)
        return 1
    marked = finalize(results)
    write_allure3_config(config)
    print(f"mlx-e2e: {results}: categories.json written, {len(marked)} more known-issue result(s) marked; "
          f"Allure 3 config {config}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
