"""Start `mlxk serve` as a user would, wait until it answers, and end it without leftovers.

`mlxk serve` 2.0.8 is a supervisor that runs the real server as a child in a session of
its own and forwards stop signals to it. Ending our process group alone therefore misses
that child: teardown tracks every descendant by PID (psutil) and signals groups and PIDs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import IO, Mapping, Sequence

import psutil
import requests

from .errors import SuiteError

POLL_SLEEP = 0.02  # seconds between readiness polls and exit checks
CONNECT_TIMEOUT = 0.05
READ_TIMEOUT = 0.5  # a /health answer never needs more than this once it is connected
TRACK_EVERY = 0.2  # seconds between descendant scans while waiting for readiness
PORT_ATTEMPTS = 3
KILL_WAIT = 5.0  # bound on waiting for SIGKILLed processes to disappear
TAIL_CHARS = 300
_PORT_IN_USE = re.compile(r"address already in use|errno 98\b|errno 48\b", re.IGNORECASE)


class ServerStartError(SuiteError):
    """A server exited before it was ready, or was not ready in time."""


def choose_free_port(host: str) -> int:
    """Ask the OS for a free TCP port on ``host`` (bind to port 0, read it, close)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def file_safe(text: str) -> str:
    """``org/name`` -> ``org--name``; anything outside [A-Za-z0-9._-] becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text.replace("/", "--"))


def _alive(proc: psutil.Process) -> bool:
    """True while ``proc`` (the very process, not a PID reuse) runs; zombies count as gone."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class LocalServer:
    """One `<command> ARGS --host H --port P` process tree; a context manager.

    ARGS defaults to `serve --model M`; a target passes its own (e.g. `embed-serve M`, or
    `serve --model M --embed-backend URL`). ``ready_path`` is polled until it answers 200; with
    ``first_answer`` (path, JSON payload) the server is ready only when that POST answers 200 too
    (a server whose health answers before its model is loaded). ``name`` is the server as
    messages call it (default "mlxk ARGS[0]").
    """

    def __init__(
        self,
        model: str,
        command: Sequence[str] | str | os.PathLike[str],
        env: Mapping[str, str] | None,
        log_dir: Path,
        startup_timeout: float,
        host: str = "127.0.0.1",
        args: Sequence[str] | None = None,
        ready_path: str = "/health",
        name: str | None = None,
        first_answer: tuple[str, dict] | None = None,
    ) -> None:
        self.model = model
        self.args = tuple(args) if args is not None else ("serve", "--model", model)
        self.ready_path = ready_path
        self.first_answer = first_answer
        self.name = name or f"mlxk {self.args[0]}"  # for messages: "mlxk serve", "mlxk embed-serve"
        # A lone path is one command word, not a sequence of characters.
        self.command = (os.fspath(command),) if isinstance(command, (str, os.PathLike)) \
            else tuple(command)
        self.env = dict(env or {})
        self.log_dir = Path(log_dir)
        self.startup_timeout = float(startup_timeout)
        self.host = host
        self.port: int | None = None
        self.pid: int | None = None
        self.log_path: Path | None = None
        self.startup_seconds: float | None = None
        self.started = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._tracked: dict[int, psutil.Process] = {}
        self._stopped = False

    # -- public ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> "LocalServer":
        """Start the server and block until ``GET ready_path`` answers 200.

        Retries on a fresh port when the chosen one was taken meanwhile. Any failure or
        interruption (Ctrl-C included) ends whatever was started before it propagates.
        """
        if self.alive():
            return self
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for attempt in range(1, PORT_ATTEMPTS + 1):
                self._reset()
                began = time.monotonic()
                self._spawn(choose_free_port(self.host))
                if self._wait_ready(began):
                    self.startup_seconds = time.monotonic() - began
                    self.started = True
                    return self
                if attempt < PORT_ATTEMPTS and _PORT_IN_USE.search(self.tail(50)):
                    self.stop()  # the process exited; this collects anything it left behind
                    continue
                self.stop()
                raise ServerStartError(self._early_exit_message())
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, grace: float = 5.0) -> None:
        """End the whole process tree: SIGTERM, ``grace`` seconds, SIGKILL, then verify.

        Idempotent. Raises SuiteError naming the PIDs if any tracked process survives.
        """
        if self._stopped or self._proc is None:
            self._close_log()
            return
        self._track()
        self._signal(signal.SIGTERM)
        if not self._wait_gone(grace):
            self._track()  # a late child may have appeared during the grace period
            self._signal(signal.SIGKILL)
            self._wait_gone(KILL_WAIT)
        self._reap()
        self._close_log()
        survivors = sorted(pid for pid in self._tracked if self._pid_alive(pid))
        if survivors:
            raise SuiteError(
                f"{self.name} for {self.model} left processes running after SIGKILL: "
                f"pids {', '.join(map(str, survivors))}; end them by hand (kill -9 PID)"
            )
        self._stopped = True

    def alive(self) -> bool:
        """True while the server process itself still runs."""
        return self._proc is not None and not self._stopped and self._proc.poll() is None

    def ended_within(self, seconds: float) -> bool:
        """True when the server process (started, not stopped by us) has exited, or exits within
        ``seconds``: a dropped connection is seen a moment before its process is gone."""
        if self._proc is None or self._stopped:
            return False
        deadline = time.monotonic() + seconds
        while self._proc.poll() is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SLEEP)
        return True

    def how_it_ended(self) -> str:
        """'exited with code N' or 'was killed by SIGNAME' (its exit status; 'is still running')."""
        code = None if self._proc is None else self._proc.poll()
        if code is None:
            return "is still running"
        return f"exited with code {code}" if code >= 0 else f"was killed by {signal.Signals(-code).name}"

    def pids(self) -> list[int]:
        """The server's PID and its descendants' PIDs seen so far (refreshed now)."""
        self._track()
        return sorted(self._tracked)

    def rss_bytes(self) -> int:
        """Summed resident memory of the server process and all its descendants."""
        self._track()
        total = 0
        for proc in list(self._tracked.values()):
            try:
                if _alive(proc):
                    total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def tail(self, n: int = 20) -> str:
        """The last ``n`` lines of the server's log ('' when there is none yet)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        if self._log is not None:
            try:
                self._log.flush()
            except (OSError, ValueError):
                pass
        with open(self.log_path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(self.log_path) - 64 * 1024))
            lines = deque(handle.read().decode("utf-8", "replace").splitlines(), maxlen=n)
        return "\n".join(lines)

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalServer({self.model!r}, pid={self.pid}, port={self.port})"

    # -- start ----------------------------------------------------------------------------

    def _reset(self) -> None:
        """Forget the previous attempt (already torn down)."""
        self._proc = None
        self._tracked = {}
        self._stopped = False
        self.pid = None

    def _spawn(self, port: int) -> None:
        """Launch the command in a new session with its output going to a log file."""
        self.port = port
        kind = self.args[0] if not self.args[0].startswith("-") else self.name  # "serve", or "mlx_lm.server"
        self.log_path = self.log_dir / f"{file_safe(kind)}-{file_safe(self.model)}-port{port}.log"
        env = {**os.environ, **self.env, "HF_HUB_OFFLINE": "1"}
        argv = [*self.command, *self.args, "--host", self.host, "--port", str(port)]
        self._log = open(self.log_path, "wb")
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True,
        )
        self.pid = self._proc.pid
        try:
            self._tracked[self.pid] = psutil.Process(self.pid)
        except psutil.Error:
            pass  # already gone; the readiness loop reports the exit

    def _wait_ready(self, began: float) -> bool:
        """Poll the readiness path until 200 (True), the process exits (False), or the timeout."""
        assert self._proc is not None
        deadline = began + self.startup_timeout
        url = f"{self.base_url}{self.ready_path}"
        next_track = 0.0
        while True:
            now = time.monotonic()
            if now >= next_track:
                self._track()
                next_track = now + TRACK_EVERY
            if self._proc.poll() is not None:
                return False
            remaining = deadline - now
            if remaining <= 0:
                message = self._timeout_message()
                self.stop()
                raise ServerStartError(message)
            try:
                timeout = (min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining))
                if requests.get(url, timeout=timeout).status_code == 200:
                    return self.first_answer is None or self._answers_first(deadline)
            except requests.RequestException:
                pass
            time.sleep(min(POLL_SLEEP, max(0.0, deadline - time.monotonic())))

    def _answers_first(self, deadline: float) -> bool:
        """POST the first real question, until it answers 200 (True) or the process exits (False)."""
        assert self._proc is not None and self.first_answer is not None
        path, payload = self.first_answer
        last = "no answer yet"
        while self._proc.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                message = self._timeout_message() + f" (POST {path}: {last})"
                self.stop()
                raise ServerStartError(message)
            try:  # the model loads meanwhile: the answer may take all the time that is left
                response = requests.post(f"{self.base_url}{path}", json=payload, timeout=(CONNECT_TIMEOUT, remaining))
                if response.status_code == 200:
                    return True
                last = f"HTTP {response.status_code} {response.text[:120]!r}"
            except requests.RequestException as error:
                last = type(error).__name__
            time.sleep(min(POLL_SLEEP * 10, max(0.0, deadline - time.monotonic())))
        return False

    def last_lines(self) -> str:
        """The log tail as one line, at most ~TAIL_CHARS characters."""
        lines = [line.strip() for line in self.tail(20).splitlines() if line.strip()]
        joined = " | ".join(lines)
        return ("..." + joined[-TAIL_CHARS:]) if len(joined) > TAIL_CHARS else (joined or "(empty)")

    def _early_exit_message(self) -> str:
        return (f"{self.name} for {self.model} {self.how_it_ended()} before it was ready; "
                f"log: {self.log_path}; last lines: {self.last_lines()}")

    def _timeout_message(self) -> str:
        return (f"{self.name} for {self.model} was not ready within {self.startup_timeout:g} s; "
                f"log: {self.log_path}; last lines: {self.last_lines()}")

    # -- teardown -------------------------------------------------------------------------

    def _track(self) -> None:
        """Add every current descendant of the server process to the tracked set."""
        root = self._tracked.get(self.pid) if self.pid is not None else None
        if root is None or not root.is_running():
            return
        try:
            children = root.children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            self._tracked.setdefault(child.pid, child)

    def _groups(self) -> set[int]:
        """Process groups created by a tracked process that a live tracked process is in.

        A group with a live member keeps its id from being reused, so signalling it can
        reach only processes that descend from our server (PID-reuse safe).
        """
        groups: set[int] = set()
        for pid, proc in self._tracked.items():
            try:
                if proc.is_running():
                    pgid = os.getpgid(pid)
                    if pgid in self._tracked:
                        groups.add(pgid)
            except (OSError, psutil.Error):
                pass
        return groups

    def _signal(self, sig: int) -> None:
        """Send ``sig`` to our process groups and to every tracked live process."""
        for pgid in self._groups():
            try:
                os.killpg(pgid, sig)
            except OSError:
                pass
        for proc in self._tracked.values():
            try:
                if proc.is_running():
                    proc.send_signal(sig)
            except psutil.Error:
                pass

    def _wait_gone(self, timeout: float) -> bool:
        """Poll until no tracked process is alive (reaping our own child); bounded."""
        deadline = time.monotonic() + timeout
        while True:
            if not any(self._pid_alive(pid) for pid in list(self._tracked)):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SLEEP)

    def _pid_alive(self, pid: int) -> bool:
        """Liveness of a tracked PID; for our own child, until its exit status is collected."""
        if pid == self.pid and self._proc is not None:
            self._reap()
            return self._proc.returncode is None
        return _alive(self._tracked[pid])

    def _reap(self) -> None:
        """Collect our direct child's exit status so it does not linger as a zombie."""
        if self._proc is not None:
            try:
                self._proc.poll()
            except OSError:
                pass

    def _close_log(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None
