"""The spec's own hygiene: every tag in a feature file is documented in features/README.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ROOT / "features"
TAG = re.compile(r"(?:^|\s)@([A-Za-z_][\w.]*)")


def _documented() -> set[str]:
    table = (FEATURES / "README.md").read_text(encoding="utf-8")
    return {m for row in table.splitlines() if row.startswith("| `@")
            for m in re.findall(r"`@([\w.]+)", row.split("|")[1])}


def _used() -> dict[str, str]:
    used = {}
    for path in sorted(FEATURES.rglob("*.feature")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip().startswith("@"):
                for tag in TAG.findall(line):
                    used.setdefault(re.sub(r"[:=].*", "", tag), f"{path.relative_to(ROOT)}:{n}")
    return used


def test_every_tag_in_use_is_documented():
    documented = _documented()
    undocumented = {tag: where for tag, where in _used().items()
                    if tag not in documented and not any(tag.startswith(d) for d in documented)}
    assert not undocumented, f"tags used but not in the table of features/README.md: {undocumented}"


def test_every_documented_tag_is_in_use():
    used = _used()
    unused = sorted(t for t in _documented() if not any(u == t or u.startswith(t) for u in used))
    assert not unused, f"tags documented in features/README.md but used by no feature: {unused}"
