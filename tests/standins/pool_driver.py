"""Driver for the Ctrl-C / SIGTERM tests: `pool_driver.py LOG_DIR`.

Builds a ServerPool of stand-in servers, acquires two, prints one JSON line with every
PID they run as, then idles (at most 30 s) until a signal ends it. SIGTERM is turned into
SystemExit here, as the suite's hooks do; the library itself installs no SIGTERM handler.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

from support.server_pool import ServerPool
from support.server_process import LocalServer

FAKE_SUT = str(Path(__file__).with_name("fake_sut.py"))
MODELS = ("standin-a/ok", "standin-b/spawns-child")


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    log_dir = Path(sys.argv[1])
    pool = ServerPool(
        factory=lambda model: LocalServer(model, (sys.executable, FAKE_SUT), None, log_dir, 10.0),
        budget_bytes=1e12,
        need_bytes=lambda model: 0.0,
    )
    pids = [pid for model in MODELS for pid in pool.acquire(model).pids()]
    print(json.dumps({"pids": pids}), flush=True)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
