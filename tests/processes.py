"""Process checks shared by the suite's own tests."""

from __future__ import annotations

import psutil


def alive(pids: list[int]) -> list[int]:
    """The PIDs among ``pids`` that still run (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out
