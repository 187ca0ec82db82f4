"""The demo portfolio: tiny real MLX models built and trained locally, with golden answers.

`python -m support.demo_portfolio build [--out DIR]` builds it; the suite builds it on first
use when no HF_HOME is set. The manifest (`portfolio.json` in the root) is what the suite
reads: per model its family, end tokens, golden prompts and answers, expected discovery
outcome, and the RAM budget for demo runs.
"""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / ".cache" / "demo-portfolio"


def ensure_built(root: Path = DEFAULT_ROOT, log=print) -> dict:
    """Build the portfolio when it is missing or stale and return its manifest."""
    from .builder import build

    return json.loads(build(root, log=log).read_text())


def load_manifest(root: Path) -> dict | None:
    """The manifest of a demo portfolio root, or None for any other cache."""
    from .builder import MANIFEST
    from .hf_cache import is_test_cache

    path = root / MANIFEST
    if not (is_test_cache(root) and path.is_file()):
        return None
    return json.loads(path.read_text())
