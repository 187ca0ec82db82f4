"""Process checks shared by the suite's own tests."""

from __future__ import annotations

import signal
import sys

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


_DEFAULT_SIGINT_THEN_EXEC = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                             "os.execv(sys.argv[1], sys.argv[1:])")


def with_default_sigint(argv: list[str]) -> list[str]:
    """``argv`` for a child that will be sent Ctrl-C. When this test run was started with SIGINT
    ignored (a background job of a non-interactive shell, nohup), every child inherits that and
    Ctrl-C would test nothing: a small exec trampoline then restores the default first (same PID,
    so Python turns SIGINT into KeyboardInterrupt as at a terminal). Otherwise ``argv`` as is."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        return list(argv)
    return [sys.executable, "-c", _DEFAULT_SIGINT_THEN_EXEC, *argv]
