"""Exit status of a live run: failures of registered known issues do not fail it, all else does.

Usage: `behave ...; python -m support.verdict $?` (the Makefile's e2e target does this).
"""

from __future__ import annotations

import json
import sys

from .hooks import VERDICT


def main(argv: list[str]) -> int:
    behave_code = int(argv[0]) if argv else 1
    if behave_code == 0:
        return 0
    if not VERDICT.is_file():
        print(f"mlx-e2e: behave exited {behave_code} before the run finished (no {VERDICT})", file=sys.stderr)
        return behave_code
    verdict = json.loads(VERDICT.read_text())
    if not verdict["known_failures"]:
        return behave_code
    bad = verdict["unexpected_failures"] + verdict["harness_problems"]
    if bad:
        print(f"mlx-e2e: {len(bad)} unexpected failure(s): {'; '.join(bad[:5])}", file=sys.stderr)
        return 1
    issues = sorted({k["issue"] for k in verdict["known_failures"]})
    print(f"mlx-e2e: every failure is a registered known issue ({', '.join(issues)}); "
          f"see features/known_issues.toml", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
