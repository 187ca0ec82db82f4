"""Assertions whose failure messages say what was expected, what came back, and where to look."""

from __future__ import annotations

from contextlib import contextmanager

from .model_facts import visible_tokens


def first_difference(a: str, b: str) -> int | None:
    """Offset of the first differing character, or None when equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _around(text: str, at: int, width: int = 30) -> str:
    return repr(text[max(0, at - width): at + width])


def same_text(expected: str, actual: str, what: str, evidence: str = "") -> None:
    """Byte-for-byte equality, with the first differing offset and both texts around it."""
    at = first_difference(expected, actual)
    if at is None:
        return
    raise AssertionError(
        f"{what}: texts differ at character {at}\n"
        f"  expected: {_around(expected, at)} (full: {expected!r})\n"
        f"  actual:   {_around(actual, at)} (full: {actual!r})" + (f"\n{evidence}" if evidence else ""))


def no_visible_tokens(text: str, forbidden: tuple[str, ...], what: str, evidence: str = "") -> None:
    shown = visible_tokens(text, forbidden)
    if shown:
        raise AssertionError(f"{what} shows end/template token(s) {shown}: {text!r}"
                             + (f"\n{evidence}" if evidence else ""))


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
