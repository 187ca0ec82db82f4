"""Where the suite reads and writes: the project root, the registry, the reports folder."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "features" / "known_issues.toml"
# MLX_E2E_REPORTS moves the suite's own reports (verdict, evidence, server logs), e.g. for its tests.
REPORTS = Path(os.environ.get("MLX_E2E_REPORTS") or ROOT / "reports")
