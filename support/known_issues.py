"""The registry of known failures of the system under test (``features/known_issues.toml``).

A scenario that fails because of a registered issue is reported as a known defect,
never hidden or passed. This module only loads, validates and matches the entries;
the file's header documents the schema.
"""

from __future__ import annotations

import operator
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from support.config import TARGETS
from support.errors import ConfigError, SuiteError

KINDS = ("product", "model")
REQUIRED = ("id", "title", "kind", "models", "messages", "evidence")
OPTIONAL = ("target", "scenario", "tags", "sut", "link")
DEFAULT_TARGET = "mlxk"  # an entry without a target is mlx-knife's
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, "<": operator.lt}
_CLAUSE = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*")
_VERSION = re.compile(r"\d+(?:\.\d+)*")


def _numbers(version: str) -> tuple[int, ...]:
    """``"2.1"`` -> ``(2, 1)``, trailing zeros dropped so that 2.1 == 2.1.0."""
    parts = [int(part) for part in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


@dataclass(frozen=True)
class VersionRange:
    """Comma-separated clauses, all of which must hold: ``">=2.0.0,<2.1"``."""

    text: str
    clauses: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """Parse text; ValueError names the clause that is not ``<op><numeric version>``."""
        clauses = []
        for clause in text.split(","):
            found = _CLAUSE.fullmatch(clause)
            if not found:
                raise ValueError(f"bad version clause {clause.strip()!r} in {text!r} "
                                 "(expected e.g. \">=2.0.0,<2.1\")")
            clauses.append((found[1], _numbers(found[2])))
        return cls(text, tuple(clauses))

    def __contains__(self, version: str) -> bool:
        found = _VERSION.match(version.strip())
        if not found:
            raise SuiteError(f"cannot compare the SUT version {version!r} with the known "
                             f"issue range {self.text!r}: no numeric version")
        number = _numbers(found[0])
        return all(_OPERATORS[op](number, bound) for op, bound in self.clauses)


@dataclass(frozen=True)
class KnownIssue:
    """One registered failure: where it happens (models, scenario, tags, SUT) and why."""

    id: str
    title: str
    kind: str
    models: tuple[str, ...]
    evidence: str
    scenario: str | None = None
    tags: frozenset[str] = frozenset()
    messages: tuple[str, ...] = ()  # globs: the failure message must match one
    sut: VersionRange | None = None  # versions of the target
    link: str | None = None
    target: str = DEFAULT_TARGET  # the system under test (support/targets.py): "mlxk", "mlx_lm"

    def applies_to(self, model_id: str, sut_version: str, target: str = DEFAULT_TARGET) -> bool:
        """True when this issue is registered for the model on this target and version (any
        scenario): a run on one target never matches another target's entries."""
        return (target == self.target and any(fnmatchcase(model_id, glob) for glob in self.models)
                and (self.sut is None or sut_version in self.sut))

    def matches(self, model_id: str, scenario_name: str, tags: Iterable[str],
                sut_version: str, message: str | None = None, target: str = DEFAULT_TARGET) -> bool:
        """True when this issue covers the model's run of the scenario on this target and version
        and the failure message looks like a registered one: a new defect in the same scenario is
        never absorbed."""
        return (self.applies_to(model_id, sut_version, target)
                and (self.scenario is None or fnmatchcase(scenario_name, self.scenario))
                and self.tags <= {tag.lstrip("@") for tag in tags}
                and any(fnmatchcase(message or "", glob) for glob in self.messages))


@dataclass(frozen=True)
class Registry:
    """The registered issues of one file, in file order."""

    path: Path
    entries: tuple[KnownIssue, ...]

    def match(self, model_id: str, scenario_name: str, tags: Iterable[str],
              sut_version: str, message: str | None = None, target: str = DEFAULT_TARGET) -> KnownIssue | None:
        """The first entry covering this run on the target, or None."""
        tags = list(tags)
        return next((issue for issue in self.entries
                     if issue.matches(model_id, scenario_name, tags, sut_version, message, target)), None)


def load(path: Path) -> Registry:
    """Read and validate the registry; any problem is one ConfigError line."""
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except OSError as error:
        raise ConfigError(f"cannot read the known issues registry {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    if set(data) - {"issue"}:
        raise ConfigError(f"{path}: unknown top-level keys {sorted(set(data) - {'issue'})} "
                          "(only [[issue]] entries belong here)")
    raw = data.get("issue", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: 'issue' must be a list of [[issue]] tables")
    entries = tuple(_entry(item, index, path) for index, item in enumerate(raw, start=1))
    ids = [issue.id for issue in entries]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"{path}: duplicate issue ids {', '.join(duplicates)}")
    return Registry(Path(path), entries)


def _entry(item: Any, index: int, path: Path) -> KnownIssue:
    """Validate one [[issue]] table (index counts from 1, for entries without an id)."""
    given_id = item.get("id") if isinstance(item, dict) else None
    name = given_id if isinstance(given_id, str) and given_id.strip() else f"entry {index}"

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{path}: known issue {name}: {problem}")

    if not isinstance(item, dict):
        raise fail("must be a [[issue]] table")
    unknown = sorted(set(item) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise fail(f"unknown keys {', '.join(unknown)} (known: {', '.join(REQUIRED + OPTIONAL)})")
    missing = [key for key in REQUIRED if key not in item]
    if missing:
        raise fail(f"missing {', '.join(missing)}")
    for key in ("id", "title", "evidence", "target", "scenario", "sut", "link"):
        if key in item and not (isinstance(item[key], str) and item[key].strip()):
            raise fail(f"{key} must be a non-empty string")
    for key in ("models", "tags", "messages"):
        value = item.get(key)
        if key in item and not (isinstance(value, list) and value
                                and all(isinstance(v, str) and v.strip() for v in value)):
            raise fail(f"{key} must be a non-empty list of strings")
    if item.get("target", DEFAULT_TARGET) not in TARGETS:
        raise fail(f"target {item['target']!r} is not one of {', '.join(TARGETS)}")
    if item["kind"] not in KINDS:
        raise fail(f"kind {item['kind']!r} is not one of {', '.join(KINDS)}")
    if "scenario" not in item and "tags" not in item:
        raise fail("needs a scenario glob or tags (or both): it would match every scenario")
    try:
        sut = VersionRange.parse(item["sut"]) if "sut" in item else None
    except ValueError as error:
        raise fail(f"sut: {error}") from None
    return KnownIssue(id=item["id"], title=item["title"], kind=item["kind"],
                      models=tuple(item["models"]), evidence=item["evidence"],
                      scenario=item.get("scenario"),
                      tags=frozenset(tag.lstrip("@") for tag in item.get("tags", [])),
                      messages=tuple(item.get("messages", ())), sut=sut, link=item.get("link"),
                      target=item.get("target", DEFAULT_TARGET))
