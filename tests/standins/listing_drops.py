"""Stand-in for a build whose listing leaves out a model: the real `mlxk` (beside this Python)
for everything, except that `list --json` drops the model named by MLX_E2E_DROP_MODEL.

Use: -D mlxk="python tests/standins/listing_drops.py" with MLX_E2E_DROP_MODEL=org/name.
Standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REAL = str(Path(sys.executable).parent / "mlxk")


def main(argv: list[str]) -> int:
    dropped = os.environ.get("MLX_E2E_DROP_MODEL", "")
    if argv[:2] != ["list", "--json"] or not dropped:
        os.execv(REAL, [REAL, *argv])
    done = subprocess.run([REAL, *argv], capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        sys.stdout.write(done.stdout)
        return done.returncode
    doc = json.loads(done.stdout)
    doc["data"]["models"] = [m for m in doc["data"]["models"] if m.get("name") != dropped]
    if "count" in doc["data"]:
        doc["data"]["count"] = len(doc["data"]["models"])
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
