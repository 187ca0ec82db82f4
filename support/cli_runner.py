"""Run the SUT's command line as a user would: bounded, in its own process group, recorded."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence


ATTACHMENT_LIMIT = 64 * 1024  # characters of stdout/stderr kept in a report attachment


def sut_env(hf_home: Path | None, changes: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Environment of every SUT subprocess: the user's, the portfolio cache, never the hub;
    ``changes`` sets variables (a value of None removes one, e.g. a feature flag)."""
    env = dict(os.environ)
    if hf_home is not None:
        env["HF_HOME"] = str(hf_home)
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("NO_COLOR", "1")
    for name, value in (changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@dataclass(frozen=True)
class CliResult:
    argv: tuple[str, ...]
    returncode: int | None  # None: killed after the timeout
    stdout: str
    stderr: str
    seconds: float
    timeout: float
    kind: str = "cli"  # what ran: the SUT's CLI, or the suite's reference decoder ("reference")
    started_at: float | None = None  # time.monotonic() when it was started
    input: str | None = None  # what was written to stdin (None: stdin closed)
    env: tuple[tuple[str, str | None], ...] = ()  # changes to the SUT environment (None: removed)

    @property
    def command_line(self) -> str:
        """The command as a shell would take it: environment changes first."""
        changes = [f"{k}={v}" if v is not None else f"-u {k}" for k, v in self.env]
        return " ".join([*(["env", *changes] if changes else []), *self.argv])

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def describe(self, limit: int = 600) -> str:
        """What a failure message needs: the command, how it ended, what it printed."""
        ended = f"killed after {self.timeout:g} s" if self.timed_out else f"exit code {self.returncode}"
        stdin = "" if self.input is None else f"stdin: {self.input[:limit]!r}\n"
        return (f"command: {self.command_line}\n{stdin}{ended} after {self.seconds:.1f} s\n"
                f"stdout: {self.stdout[-limit:]!r}\nstderr: {self.stderr[-limit:]!r}")


def run_cli(command: Sequence[str], args: Sequence[str], hf_home: Path | None, timeout: float,
            kind: str = "cli", input: str | None = None,
            env: Mapping[str, str | None] | None = None) -> CliResult:
    """Run `command + args` without a terminal, killed with its group on timeout. stdin is closed,
    or carries ``input`` (then closed); ``env``: changes to the SUT environment (see sut_env)."""
    argv = (*command, *args)
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=sut_env(hf_home, env), start_new_session=True)
    try:
        out, err = proc.communicate(None if input is None else input.encode(), timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # a descendant in another session holds the pipes
            proc.kill()
            out, err = b"", b"(output lost: a descendant kept the pipes open after the kill)"
        code = None
    return CliResult(argv, code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                     time.monotonic() - started, timeout, kind, started, input, tuple((env or {}).items()))


def plain_answer(result: CliResult) -> str:
    """The answer text of `mlxk run`: stdout without the one newline the CLI ends it with."""
    out = result.stdout
    return out[:-1] if out.endswith("\n") else out


def cli_attachments(result: CliResult) -> dict[str, str]:
    """The CLI call as report attachments: command line, exit code, stdout, stderr."""
    ended = "killed after timeout" if result.timed_out else str(result.returncode)
    stdin = {} if result.input is None else {"stdin": _clip(result.input)}
    return {"command line": result.command_line, **stdin, "exit code": f"{ended} ({result.seconds:.2f} s)",
            "stdout": _clip(result.stdout), "stderr": _clip(result.stderr)}


def _clip(text: str, limit: int = ATTACHMENT_LIMIT) -> str:
    """Head and tail of a long output (a looping CLI can print megabytes)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters cut ...]\n{text[-half:]}"


# `mlxk run` streams only when stdout is a terminal. stdout (and stdin) get the slave side of a
# pty; stderr stays a pipe, so warnings never mix into the answer. The terminal's line
# discipline turns each "\n" into "\r\n": that is the only framing it adds (mlxk 2.0.8 writes
# no escape sequences; any it did write would stay in the text and show in the comparison),
# so "\r\n" -> "\n" is the only normalisation.

def run_in_terminal(command, args, hf_home: Path | None, timeout: float) -> CliResult:
    """Run `command + args` with stdout on a pseudo-terminal, killed with its group on timeout."""
    argv = (*command, *args)
    started = time.monotonic()
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                                env=sut_env(hf_home), start_new_session=True)
    except OSError:
        os.close(master)
        raise
    finally:
        os.close(slave)  # the child holds it; EOF (EIO) on the master once the child's side closes
    out, err = bytearray(), bytearray()
    open_fds = {master: out, proc.stderr.fileno(): err}
    deadline = started + timeout
    code: int | None = None
    try:
        while open_fds and (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(open_fds), [], [], min(0.1, remaining))
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: every holder of the slave side has closed it
                    data = b""
                if data:
                    open_fds[fd] += data
                else:
                    del open_fds[fd]
        try:
            if open_fds:  # the deadline passed with output still open
                raise subprocess.TimeoutExpired(argv, timeout)
            code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
    finally:
        os.close(master)
        proc.stderr.close()
    text = out.decode("utf-8", "replace").replace("\r\n", "\n")
    return CliResult(argv, code, text, err.decode("utf-8", "replace"), time.monotonic() - started, timeout,
                     started_at=started)
