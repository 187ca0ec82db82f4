"""Generic assertions whose failure messages say what was expected, what came back, and where to look.

Domain checks live beside their domain (support/api_checks.py for the API, model_facts for end and
template tokens, metrics for speed); this module only compares and reports. Long texts are clipped
in the message (the whole text is in the scenario's evidence); multi-line texts get a line diff.
"""

from __future__ import annotations

import difflib
from contextlib import contextmanager

SHOWN = 300  # characters of a text shown whole in a message; longer ones are clipped
DIFF_LINES = 40  # lines of a multi-line diff shown in a message


def first_difference(a: str, b: str) -> int | None:
    """Offset of the first differing character, or None when equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def clipped(text: str, limit: int = SHOWN) -> str:
    """`repr(text)`, clipped in the middle when long (the whole text is in the evidence)."""
    if len(text) <= limit:
        return repr(text)
    half = limit // 2
    return f"{text[:half]!r} [... {len(text) - limit} characters, whole text in the evidence ...] {text[-half:]!r}"


def line_diff(expected: str, actual: str, limit: int = DIFF_LINES) -> str:
    """A unified line diff (expected -> actual), at most `limit` lines."""
    lines = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), "expected", "actual",
                                      lineterm="", n=1))
    shown = lines[:limit] + ([f"[... {len(lines) - limit} more diff lines ...]"] if len(lines) > limit else [])
    return "\n".join("    " + line for line in shown)


def _around(text: str, at: int, width: int = 30) -> str:
    return repr(text[max(0, at - width): at + width])


def same_text(expected: str, actual: str, what: str, evidence: str = "") -> None:
    """Exact equality, with the first differing offset, both texts around it, and a line diff
    when either text has several lines."""
    at = first_difference(expected, actual)
    if at is None:
        return
    message = (f"{what}: texts differ at character {at}\n"
               f"  expected: {_around(expected, at)} (full: {clipped(expected)})\n"
               f"  actual:   {_around(actual, at)} (full: {clipped(actual)})")
    if "\n" in expected.strip() or "\n" in actual.strip():
        message += "\n  line diff:\n" + line_diff(expected, actual)
    raise AssertionError(message + (f"\n{evidence}" if evidence else ""))


def all_same(comparisons) -> None:
    """`same_text` over (expected, actual, what, evidence) items; one failure names every difference."""
    failures = []
    for expected, actual, what, evidence in comparisons:
        try:
            same_text(expected, actual, what, evidence)
        except AssertionError as e:
            failures.append(str(e))
    if failures:
        raise AssertionError(f"{len(failures)} of {len(comparisons)} comparisons differ:\n\n" + "\n\n".join(failures))


def that(condition: bool, message: str, evidence: str = "") -> None:
    """A plain check whose message names expected and actual values."""
    if not condition:
        raise AssertionError(message + (f"\n{evidence}" if evidence else ""))


@contextmanager
def labelled(label: str):
    """Prefix the message of a failing check with `label` (which request, which mode)."""
    try:
        yield
    except AssertionError as e:
        raise AssertionError(f"{label}: {e}") from None
