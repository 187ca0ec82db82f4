"""Known issues registry: validation and matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.errors import ConfigError, SuiteError
from support.known_issues import KnownIssue, Registry, VersionRange, load

REPO = Path(__file__).resolve().parents[1]

ENTRIES = '''
[[issue]]
id = "KI-001"
title = "Streamed replies lose their last token"
kind = "product"
models = ["mlx-community/*-4bit"]
scenario = "A streamed chat reply*"
messages = ["*lost its last token*"]
sut = ">=2.0.0,<2.1"
evidence = "mlxk serve; curl -N ... ends early"
link = "https://example.org/issues/1"

[[issue]]
id = "KI-002"
title = "Base model rambles"
kind = "model"
models = ["org/base"]
tags = ["portfolio.text", "@slow"]
messages = ["*never stopped*"]
evidence = "mlxk run org/base 'Say hi' never stops"
'''

STREAM = "A streamed chat reply ends with a stop reason (mlx-community/Qwen-4bit) -- @1.1 "
FOUR_BIT = "mlx-community/Qwen-4bit"
LOST = "AssertionError: the stream lost its last token"  # the failure KI-001 registers
RAMBLES = "AssertionError: the answer never stopped"  # KI-002's


def write(tmp_path: Path, text: str) -> Path:
    """A registry file with text."""
    path = tmp_path / "known_issues.toml"
    path.write_text(text)
    return path


def entry(**fields: object) -> str:
    """One [[issue]] table: a valid product entry with fields replaced (None drops one)."""
    values: dict[str, object] = {"id": "KI-009", "title": "t", "kind": "product",
                                 "models": ["*"], "scenario": "*", "messages": ["*"], "evidence": "seen"}
    values.update(fields)
    lines = [f"{key} = {_toml(value)}" for key, value in values.items() if value is not None]
    return "[[issue]]\n" + "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    """A TOML literal for a str, int or list of str."""
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """The two entries of ENTRIES."""
    return load(write(tmp_path, ENTRIES))


def test_the_repository_registry_loads() -> None:
    entries = load(REPO / "features" / "known_issues.toml").entries
    assert all(e.id.startswith("KI-") and e.evidence.strip() for e in entries)


def test_empty_registry_matches_nothing(tmp_path: Path) -> None:
    empty = load(write(tmp_path, "# nothing registered\n"))
    assert empty.entries == ()
    assert empty.match(FOUR_BIT, STREAM, [], "2.0.8", LOST) is None


def test_entries_are_loaded_in_file_order(registry) -> None:
    first, second = registry.entries
    assert first == KnownIssue(
        id="KI-001", title="Streamed replies lose their last token", kind="product",
        models=("mlx-community/*-4bit",), evidence="mlxk serve; curl -N ... ends early",
        scenario="A streamed chat reply*", sut=VersionRange.parse(">=2.0.0,<2.1"),
        link="https://example.org/issues/1", messages=("*lost its last token*",))
    assert second.tags == frozenset({"portfolio.text", "slow"})
    assert second.scenario is second.sut is second.link is None


def test_match_by_model_glob(registry) -> None:
    assert registry.match(FOUR_BIT, STREAM, [], "2.0.8", LOST).id == "KI-001"
    assert registry.match("mlx-community/Qwen-8bit", STREAM, [], "2.0.8", LOST) is None
    assert registry.match("MLX-community/Qwen-4bit", STREAM, [], "2.0.8", LOST) is None


def test_a_different_failure_in_a_registered_scenario_is_not_absorbed(registry) -> None:
    assert registry.match(FOUR_BIT, STREAM, [], "2.0.8", "AssertionError: expected HTTP 200, got 500") is None
    assert registry.match(FOUR_BIT, STREAM, [], "2.0.8", None) is None
    assert registry.match("org/base", "any", ["portfolio.text", "slow"], "2.0.8", LOST) is None


def _example(glob: str) -> str:
    """A concrete string the fnmatch glob matches (`*` and `?` as "x", a `[...]` class as its first
    character; fnmatch takes a `]` right after `[` literally)."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if c == "[":
            end = glob.index("]", i + 2)
            out.append(glob[i + 1])
            i = end + 1
            continue
        out.append("x" if c in "*?" else c)
        i += 1
    return "".join(out)


RELEASES = [f"2.0.{n}" for n in range(8, -1, -1)]  # the releases the version matrix covers, newest first


def test_no_registered_issue_absorbs_a_different_failure() -> None:
    """For every entry of the project's registry: a run of a scenario it covers, failing with another
    message (an injected fault: a wrong finish reason), is not booked as that issue, nor as any other."""
    registry = load(REPO / "features" / "known_issues.toml")
    other = "AssertionError: answer to 'Say hello.': expected finish_reason 'stop', got 'length'"
    for issue in registry.entries:
        model, scenario = _example(issue.models[0]), _example(issue.scenario or "any scenario")
        tags = sorted(issue.tags)
        releases = {"mlxk": RELEASES, "mlx_lm": ("0.31.3", "0.32.2"), "mlx_openai_server": ("1.8.1",)}[issue.target]
        version = next(v for v in releases if issue.sut is None or v in issue.sut)  # historical entries too
        assert issue.matches(model, scenario, tags, version, _example(issue.messages[0]), issue.target), \
            f"{issue.id}: the example run does not match the entry itself ({model}, {scenario!r})"
        hit = registry.match(model, scenario, tags, version, other, issue.target)
        assert hit is None, f"{issue.id}: a different failure in its scenario was booked as {hit.id}"


def test_match_by_scenario_glob(registry) -> None:
    assert registry.match(FOUR_BIT, "A chat reply (x) -- @1.1 ", [], "2.0.8", LOST) is None


def test_match_needs_all_tags(registry) -> None:
    assert registry.match("org/base", "any", ["portfolio.text", "slow", "x"], "2.0.8", RAMBLES).id \
        == "KI-002"
    assert registry.match("org/base", "any", ["@portfolio.text", "@slow"], "2.0.8", RAMBLES).id \
        == "KI-002"
    assert registry.match("org/base", "any", ["portfolio.text"], "2.0.8", RAMBLES) is None


@pytest.mark.parametrize(("version", "inside"), [
    ("2.0.0", True), ("2.0.8", True), ("2.0.10", True), ("2.0.8rc1", True),
    ("1.9.9", False), ("2.1", False), ("2.1.0", False), ("10.0.0", False)])
def test_match_by_sut_range(registry, version: str, inside: bool) -> None:
    assert (registry.match(FOUR_BIT, STREAM, [], version, LOST) is not None) is inside


def test_no_sut_range_matches_every_version(registry) -> None:
    assert registry.match("org/base", "x", ["portfolio.text", "slow"], "99.1", RAMBLES).id == "KI-002"


def test_unusable_sut_version_is_one_line_error(registry) -> None:
    with pytest.raises(SuiteError, match=r"^cannot compare the SUT version 'unknown'"):
        registry.match(FOUR_BIT, STREAM, [], "unknown", LOST)


@pytest.mark.parametrize(("text", "problem"), [
    (entry(modles=["*"]), "known issue KI-009: unknown keys modles (known: id, title,"),
    (entry(id=None), "known issue entry 1: missing id"),
    (entry(title=None), "known issue KI-009: missing title"),
    (entry(kind=None), "known issue KI-009: missing kind"),
    (entry(evidence=None), "known issue KI-009: missing evidence"),
    (entry(models=None), "known issue KI-009: missing models"),
    (entry(messages=None), "known issue KI-009: missing messages"),
    (entry(messages=[]), "known issue KI-009: messages must be a non-empty list of strings"),
    (entry(kind="flaky"), "known issue KI-009: kind 'flaky' is not one of product, model"),
    (entry(target="ollama"), "known issue KI-009: target 'ollama' is not one of mlxk, mlx_lm"),
    (entry(target=""), "known issue KI-009: target must be a non-empty string"),
    (entry(sut=">=2.0,~2.1"), "known issue KI-009: sut: bad version clause '~2.1'"),
    (entry(sut="2.0"), "known issue KI-009: sut: bad version clause '2.0'"),
    (entry(scenario=None), "known issue KI-009: needs a scenario glob or tags"),
    (entry(models=[]), "known issue KI-009: models must be a non-empty list of strings"),
    (entry(tags="slow"), "known issue KI-009: tags must be a non-empty list of strings"),
    (entry(evidence=""), "known issue KI-009: evidence must be a non-empty string"),
    (entry(id=7), "known issue entry 1: id must be a non-empty string"),
    (entry(tags=[]), "known issue KI-009: tags must be a non-empty list of strings"),
    (entry() + entry(), "duplicate issue ids KI-009"),
    ('title = "x"\n', "unknown top-level keys ['title']"),
    ("issue = 3\n", "'issue' must be a list of [[issue]] tables"),
    ("[[issue]\n", "not valid TOML: "),
])
def test_validation_errors_are_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: {problem}")
    assert "\n" not in message


def test_an_entry_without_a_target_is_mlx_knifes(registry) -> None:
    assert {e.target for e in registry.entries} == {"mlxk"}
    assert registry.match(FOUR_BIT, STREAM, [], "2.0.8", LOST).id == "KI-001"  # the default target
    assert registry.match(FOUR_BIT, STREAM, [], "2.0.8", LOST, target="mlxk").id == "KI-001"


def test_a_run_on_one_target_never_matches_another_targets_entries(tmp_path: Path) -> None:
    both = load(write(tmp_path, entry(id="KI-009", sut=">=2.0") + entry(id="KI-501", target="mlx_lm", sut=">=0.31,<0.32")))
    assert both.match("m", "s", [], "2.0.8", "boom").id == "KI-009"
    assert both.match("m", "s", [], "0.31.3", "boom", target="mlx_lm").id == "KI-501"
    assert both.match("m", "s", [], "2.0.8", "boom", target="mlx_lm") is None  # mlx_lm's range, not mlxk's
    assert both.match("m", "s", [], "0.31.3", "boom", target="mlxk") is None
    mlx_lm = both.entries[1]
    assert mlx_lm.applies_to("m", "0.31.3", "mlx_lm") and not mlx_lm.applies_to("m", "0.31.3")
    assert not mlx_lm.applies_to("m", "0.32.2", "mlx_lm")  # its version range


def test_every_registered_target_is_a_known_one() -> None:
    from support.config import TARGETS
    entries = load(REPO / "features" / "known_issues.toml").entries
    assert {e.target for e in entries} <= set(TARGETS)


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read the known issues registry .*nope"
                                          r"\.toml: No such file or directory$"):
        load(tmp_path / "nope.toml")


def test_version_range_compares_numerically() -> None:
    assert "2.10" in VersionRange.parse(">2.9")
    assert "2.1.0" in VersionRange.parse("==2.1")
    assert "2.0.8" in VersionRange.parse("!=2.0.7, <= 2.0.8")
    assert "2.0.9" not in VersionRange.parse("<=2.0.8")
