"""Keep servers resident across scenarios of the same model, within a memory budget."""

from __future__ import annotations

import atexit
import sys
import threading
import time
from collections import OrderedDict
from typing import Callable

from .errors import SuiteError
from .server_process import LocalServer

Event = tuple[str, str, float]  # ("start" | "evict" | "stop", model, seconds)


class ServerPool:
    """Hands out running servers by model; evicts least recently used ones to fit a budget.

    Cost of a resident server = ``need_bytes(model)`` + its measured RSS. A candidate's RSS
    is estimated as the largest RSS measured so far. One server is always allowed.
    With ``reuse=False`` every ``acquire`` stops the previous servers and starts afresh.
    """

    def __init__(
        self,
        factory: Callable[[str], LocalServer],
        budget_bytes: float,
        need_bytes: Callable[[str], float],
        reuse: bool = True,
    ) -> None:
        self.factory = factory
        self.budget_bytes = float(budget_bytes)
        self.need_bytes = need_bytes
        self.reuse = reuse
        self.starts = 0
        self.startup_seconds_total = 0.0
        self.events: list[Event] = []
        self._servers: OrderedDict[str, LocalServer] = OrderedDict()  # LRU first
        self._costs: dict[str, float] = {}
        self._starting: LocalServer | None = None
        self._max_rss = 0.0
        self._lock = threading.RLock()  # re-entrant: stop_all may run from a signal handler
        atexit.register(self._stop_at_exit)

    def acquire(self, model: str) -> LocalServer:
        """A running server for ``model``: the resident one when alive, else a new one."""
        with self._lock:
            server = self._servers.get(model)
            if server is not None and self.reuse and server.alive():
                self._servers.move_to_end(model)
                return server
            if server is not None:
                self._end(model, "stop")
            if not self.reuse:
                for resident in list(self._servers):
                    self._end(resident, "stop")
            self._make_room(self.process_cost(model))
            return self._start(model)

    def process_cost(self, model: str) -> float:
        """Estimated memory of one more process holding ``model`` (a server, or a CLI or
        reference-decoder run): its need plus the largest server RSS measured so far."""
        return self.need_bytes(model) + self._max_rss

    def make_room(self, extra_bytes: float) -> None:
        """Evict least recently used servers until the residents and one more process needing
        ``extra_bytes`` (a CLI or reference-decoder run) fit the budget, or no server is left."""
        with self._lock:
            self._make_room(extra_bytes)

    def resident(self) -> list[str]:
        """Models with a server, least recently used first."""
        return list(self._servers)

    def stop_all(self) -> None:
        """End every server (also one still starting). Idempotent.

        Tries all of them before raising the first SuiteError of any that left processes.
        """
        errors: list[SuiteError] = []
        with self._lock:
            if self._starting is not None:
                try:
                    self._starting.stop()
                except SuiteError as exc:
                    errors.append(exc)
                self._starting = None
            for model in list(self._servers):
                try:
                    self._end(model, "stop")
                except SuiteError as exc:
                    errors.append(exc)
        if errors:
            raise errors[0]

    def total_cost(self) -> float:
        """Summed cost of the resident servers, in bytes."""
        return sum(self._costs.get(model, 0.0) for model in self._servers)

    def __enter__(self) -> "ServerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    # -- internals ------------------------------------------------------------------------

    def _make_room(self, candidate: float) -> None:
        """Evict LRU servers until residents + candidate fit the budget (or none is left)."""
        while self._servers and self.total_cost() + candidate > self.budget_bytes:
            self._end(next(iter(self._servers)), "evict")

    def _start(self, model: str) -> LocalServer:
        server = self.factory(model)
        self._starting = server  # reachable by stop_all, also if Ctrl-C lands mid-start
        try:
            server.start()
        except Exception:
            self._starting = None  # start() ended what it had started
            raise
        self._servers[model] = server
        self._starting = None
        seconds = server.startup_seconds or 0.0
        self.starts += 1
        self.startup_seconds_total += seconds
        self.events.append(("start", model, seconds))
        rss = float(server.rss_bytes())
        self._max_rss = max(self._max_rss, rss)
        self._costs[model] = self.need_bytes(model) + rss
        return server

    def _end(self, model: str, kind: str) -> None:
        """Stop ``model``'s server, then forget it.

        An interruption (Ctrl-C) mid-stop keeps it listed, so a later stop_all retries;
        a SuiteError (processes survived SIGKILL) forgets it: retrying cannot help.
        """
        server = self._servers.get(model)
        if server is None:
            return
        began = time.monotonic()
        try:
            server.stop()
        except SuiteError:
            self._forget(model)
            raise
        finally:
            self.events.append((kind, model, time.monotonic() - began))
        self._forget(model)

    def _forget(self, model: str) -> None:
        self._servers.pop(model, None)
        self._costs.pop(model, None)

    def _stop_at_exit(self) -> None:
        """atexit safety net: end everything, report leftovers as one line."""
        try:
            self.stop_all()
        except SuiteError as exc:
            print(f"mlx-e2e: {exc}", file=sys.stderr)
