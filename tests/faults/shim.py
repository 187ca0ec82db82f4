#!/usr/bin/env python3
"""The SUT command with a fault: wraps the real `mlxk` and breaks it the way `MLX_E2E_FAULT` says.

The suite's tests use it as `-D mlxk=<wrapper>`, where the wrapper is a tiny script that runs
`main()` with the venv's Python (see `write_wrapper`). The suite passes its environment on to
every SUT subprocess, so `MLX_E2E_FAULT=<name>` in behave's environment reaches the shim.

The faults are defined in catalogue.py:
- A CLI fault (`Fault.cli`): the real command runs; its stdout or exit code is altered.
- `serve --model M --host H --port P` (and `embed-serve M --host H --port P`, the embeddings
  backend, alike): the real `mlxk serve` starts on a free internal port; once
  it answers `/health`, the fault proxy (`transport.py`) binds H:P and forwards to it through the
  fault's hooks (`Fault.proxy`; no fault: forwarding unchanged, the healthy control).
  SIGTERM/SIGINT/SIGHUP end the proxy, are forwarded to the real server, and the shim exits once
  it is gone.
- Startup faults: `hang-at-startup` (the real server runs, H:P is never bound) and
  `exit-at-startup` (a message on stderr, exit code 1, no server).
- No fault, or a fault of the other kind: transparent (`exec` of the real command for the CLI).
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from faults.catalogue import BY_NAME, CliFault
from faults.transport import FaultProxy, Hooks

FAULT_VAR = "MLX_E2E_FAULT"
REAL_VAR = "MLX_E2E_REAL_MLXK"  # optional: the command to wrap (default: the mlxk beside this Python)
HANG_AT_STARTUP = "hang-at-startup"  # the two faults of `serve` that only the harness tests use
EXIT_AT_STARTUP = "exit-at-startup"
READY_LIMIT = 600.0  # seconds; the suite's startup_timeout ends us far earlier
POLL = 0.1
STOP_GRACE = 10.0


def real_mlxk() -> str:
    return os.environ.get(REAL_VAR) or str(Path(sys.executable).parent / "mlxk")


def write_wrapper(path: Path) -> Path:
    """An executable that runs this shim with the current interpreter (the venv's)."""
    tests_dir = Path(__file__).resolve().parents[1]
    path.write_text(f"#!{sys.executable}\n"
                    "import sys\n"
                    f"sys.path.insert(0, {str(tests_dir)!r})\n"
                    "from faults.shim import main\n"
                    "sys.exit(main(sys.argv[1:]))\n")
    path.chmod(0o755)
    return path


# --- the command line ------------------------------------------------------------------

def cli(argv: list[str], fault: CliFault | None) -> int:
    real = real_mlxk()
    if fault is None or not fault.applies(argv):
        os.execv(real, [real, *argv])  # transparent: the very process the suite started becomes mlxk
    if fault.hang:
        while True:  # the suite's cli_timeout ends us (SIGKILL to our process group)
            signal.pause()
    proc = subprocess.run([real, *argv], stdout=subprocess.PIPE)  # stdin and stderr: ours
    out, code = fault.alter(proc.stdout.decode("utf-8", "replace"), proc.returncode)
    sys.stdout.write(out)
    sys.stdout.flush()
    return code


# --- serve ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _say(line: str) -> None:
    print(f"fault shim: {line}", file=sys.stderr, flush=True)


def _end(real: subprocess.Popen) -> int:
    """SIGTERM the real server (its supervisor forwards it), wait, SIGKILL if it will not go."""
    if real.poll() is None:
        real.send_signal(signal.SIGTERM)
        try:
            real.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            real.kill()
            real.wait(STOP_GRACE)
    return real.returncode


def serve(argv: list[str], fault: str) -> int:
    """`serve --model M ...` or `embed-serve M ...` (the embeddings backend), behind the fault proxy."""
    command = argv[0]
    parser = argparse.ArgumentParser(prog=f"mlxk {command}", add_help=False)
    if command == "embed-serve":
        parser.add_argument("model")
    else:
        parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    opts, extra = parser.parse_known_args(argv[1:])
    model_args = [opts.model] if command == "embed-serve" else ["--model", opts.model]
    if fault == EXIT_AT_STARTUP:
        _say(f"cannot load {opts.model}: simulated startup failure ({FAULT_VAR}={fault})")
        return 1
    entry = BY_NAME.get(fault)
    hooks, name = (entry.proxy, fault) if entry is not None and entry.proxy is not None else (Hooks, "none")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: stop.set())
    internal = _free_port()
    real = subprocess.Popen([real_mlxk(), command, *model_args, "--host", "127.0.0.1",
                             "--port", str(internal), *extra], stdin=subprocess.DEVNULL)
    server = None
    try:
        waited = 0.0
        while not _healthy(internal):
            if real.poll() is not None:
                _say(f"the real server exited with code {real.returncode} before it was ready")
                return real.returncode or 1
            if stop.wait(POLL) or waited > READY_LIMIT:
                return 0
            waited += POLL
        if fault == HANG_AT_STARTUP:
            _say(f"real server ready on port {internal}; {opts.host}:{opts.port} is never bound ({fault})")
        else:
            try:
                fronted = hooks(opts.model)
                fronted.process = command
                server = FaultProxy(opts.host, opts.port, internal, fronted, name)
            except OSError as e:
                _say(f"cannot bind {opts.host}:{opts.port}: [Errno {e.errno}] {e.strerror}")
                return 1
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
            _say(f"fault proxy '{name}' on {opts.host}:{opts.port} -> real server on port {internal}")
        while not stop.wait(0.2):
            if real.poll() is not None:
                _say(f"the real server exited with code {real.returncode}")
                return real.returncode or 1
        return 0
    finally:
        if server is not None:
            server.stop()
        _end(real)


def main(argv: list[str]) -> int:
    fault = os.environ.get(FAULT_VAR, "").strip()
    if argv and argv[0] in ("serve", "embed-serve"):
        return serve(argv, fault)
    entry = BY_NAME.get(fault)
    return cli(argv, entry.cli if entry is not None else None)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main(sys.argv[1:]))
