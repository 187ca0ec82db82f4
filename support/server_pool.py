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

Event = tuple[str, str, float]  # ("start" | "evict" | "stop" | "died" | "hung", label, seconds); label: see label()
SERVE = "serve"  # the default kind of server: one model answering chat and completions
Key = tuple[str, str]  # (kind, model)


def label(key: Key) -> str:
    """A resident server as people read it: the model, with its kind unless it is a plain serve."""
    kind, model = key
    return model if kind == SERVE else f"{model} ({kind})"


class Retired(Exception):
    """A server of this (kind, model) hung earlier in the run and was retired: not started again."""

    def __init__(self, key: Key, why: str) -> None:
        super().__init__(f"{label(key)}: {why}")
        self.key, self.why = key, why


class ServerPool:
    """Hands out running servers by (kind, model); evicts least recently used ones to fit a budget.

    Kind "serve" is built by ``factory(model)``; any other kind (e.g. "embed-serve", or a proxy
    naming its backend) by ``kind_factory(kind, model)``.

    Cost of a resident server = ``need_bytes(model)`` + its measured RSS. A candidate's RSS
    is estimated as the largest RSS measured so far. One server is always allowed.
    With ``reuse=False`` every ``acquire`` stops the previous servers and starts afresh.
    A server that died is noticed at the next ``acquire`` (its process is polled) and replaced; one
    that hung is ``retire``d: stopped, and its key refused (``Retired``) for the rest of the run, so a
    hang costs one timeout per model and kind, not one per scenario.
    """

    def __init__(
        self,
        factory: Callable[[str], LocalServer],
        budget_bytes: float,
        need_bytes: Callable[[str], float],
        reuse: bool = True,
        kind_factory: Callable[[str, str], LocalServer] | None = None,
    ) -> None:
        self.factory = factory
        self.kind_factory = kind_factory
        self.budget_bytes = float(budget_bytes)
        self.need_bytes = need_bytes
        self.reuse = reuse
        self.starts = 0
        self.startup_seconds_total = 0.0
        self.events: list[Event] = []
        self._servers: OrderedDict[Key, LocalServer] = OrderedDict()  # LRU first
        self._costs: dict[Key, float] = {}
        self._starting: LocalServer | None = None
        self.retired: dict[Key, str] = {}  # key -> why (see retire)
        self._max_rss = 0.0
        self._lock = threading.RLock()  # re-entrant: stop_all may run from a signal handler
        atexit.register(self._stop_at_exit)

    def acquire(self, model: str, kind: str = SERVE) -> LocalServer:
        """A running server of ``kind`` for ``model``: the resident one when alive, else a new one."""
        key = (kind, model)
        with self._lock:
            if key in self.retired:
                raise Retired(key, self.retired[key])
            server = self._servers.get(key)
            if server is not None and self.reuse and server.alive():
                self._servers.move_to_end(key)
                return server
            if server is not None:
                self._end(key, "stop" if server.alive() else "died")  # a dead one: its leftovers collected
            if not self.reuse:
                for resident in list(self._servers):
                    self._end(resident, "stop")
            self._make_room(self.process_cost(model))
            return self._start(key)

    def process_cost(self, model: str) -> float:
        """Estimated memory of one more process holding ``model`` (a server, or a CLI or
        reference-decoder run): its need plus the largest server RSS measured so far."""
        return self.need_bytes(model) + self._max_rss

    def make_room(self, extra_bytes: float) -> None:
        """Evict least recently used servers until the residents and one more process needing
        ``extra_bytes`` (a CLI or reference-decoder run) fit the budget, or no server is left."""
        with self._lock:
            self._make_room(extra_bytes)

    def retire(self, server: LocalServer, why: str) -> None:
        """Stop a resident server that hung and refuse its key from now on (``Retired`` with ``why``).
        A server the pool does not hold is left alone."""
        with self._lock:
            key = next((k for k, s in self._servers.items() if s is server), None)
            if key is not None:
                self.retired[key] = why
                self._end(key, "hung")

    def resident(self) -> list[str]:
        """Resident servers (see label()), least recently used first."""
        return [label(key) for key in self._servers]

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
            for key in list(self._servers):
                try:
                    self._end(key, "stop")
                except SuiteError as exc:
                    errors.append(exc)
        if errors:
            raise errors[0]

    def total_cost(self) -> float:
        """Summed cost of the resident servers, in bytes."""
        return sum(self._costs.get(key, 0.0) for key in self._servers)

    def __enter__(self) -> "ServerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    # -- internals ------------------------------------------------------------------------

    def _make_room(self, candidate: float) -> None:
        """Evict LRU servers until residents + candidate fit the budget (or none is left)."""
        while self._servers and self.total_cost() + candidate > self.budget_bytes:
            self._end(next(iter(self._servers)), "evict")

    def _start(self, key: Key) -> LocalServer:
        kind, model = key
        if kind == SERVE:
            server = self.factory(model)
        elif self.kind_factory is None:
            raise SuiteError(f"this server pool starts no {kind!r} servers (no kind_factory)")
        else:
            server = self.kind_factory(kind, model)
        self._starting = server  # reachable by stop_all, also if Ctrl-C lands mid-start
        try:
            server.start()
        except Exception:
            self._starting = None  # start() ended what it had started
            raise
        self._servers[key] = server
        self._starting = None
        seconds = server.startup_seconds or 0.0
        self.starts += 1
        self.startup_seconds_total += seconds
        self.events.append(("start", label(key), seconds))
        rss = float(server.rss_bytes())
        self._max_rss = max(self._max_rss, rss)
        self._costs[key] = self.need_bytes(model) + rss
        return server

    def _end(self, key: Key, kind: str) -> None:
        """Stop the server of ``key``, then forget it (``kind``: "stop", "evict", "died" or "hung").

        An interruption (Ctrl-C) mid-stop keeps it listed, so a later stop_all retries;
        a SuiteError (processes survived SIGKILL) forgets it: retrying cannot help.
        """
        server = self._servers.get(key)
        if server is None:
            return
        began = time.monotonic()
        try:
            server.stop()
        except SuiteError:
            self._forget(key)
            raise
        finally:
            self.events.append((kind, label(key), time.monotonic() - began))
        self._forget(key)

    def _forget(self, key: Key) -> None:
        self._servers.pop(key, None)
        self._costs.pop(key, None)

    def _stop_at_exit(self) -> None:
        """atexit safety net: end everything, report leftovers as one line."""
        try:
            self.stop_all()
        except SuiteError as exc:
            print(f"mlx-e2e: {exc}", file=sys.stderr)
