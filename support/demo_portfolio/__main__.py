"""python -m support.demo_portfolio build [--out DIR] [--force]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import SuiteError
from . import DEFAULT_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m support.demo_portfolio")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the demo portfolio (a no-op when it is up to date)")
    b.add_argument("--out", type=Path, default=DEFAULT_ROOT, help=f"default: {DEFAULT_ROOT}")
    b.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    from .builder import build

    try:
        build(args.out.resolve(), force=args.force)
    except SuiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
