#!/usr/bin/env python3
"""The SUT command with a fault: wraps the real `mlxk` and breaks it the way `MLX_E2E_FAULT` says.

The suite's tests use it as `-D mlxk=<wrapper>`, where the wrapper is a tiny script that runs
`main()` with the venv's Python (see `write_wrapper`). The suite passes its environment on to
every SUT subprocess, so `MLX_E2E_FAULT=<name>` in behave's environment reaches the shim.

- A CLI fault (`CLI_FAULTS`): the real command runs; its stdout or exit code is altered.
- `serve --model M --host H --port P`: the real `mlxk serve` starts on a free internal port; once
  it answers `/health`, the fault proxy (`proxy.py`) binds H:P and forwards to it, rewriting by the
  named fault (no fault: forwarding unchanged, the healthy control). SIGTERM/SIGINT/SIGHUP end the
  proxy, are forwarded to the real server, and the shim exits once it is gone.
- Startup faults: `hang-at-startup` (the real server runs, H:P is never bound) and
  `exit-at-startup` (a message on stderr, exit code 1, no server).
- No fault, or a fault of the other kind: transparent (`exec` of the real command for the CLI).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

FAULT_VAR = "MLX_E2E_FAULT"
REAL_VAR = "MLX_E2E_REAL_MLXK"  # optional: the command to wrap (default: the mlxk beside this Python)
STARTUP_FAULTS = ("hang-at-startup", "exit-at-startup")
READY_LIMIT = 600.0  # seconds; the suite's startup_timeout ends us far earlier
POLL = 0.1
STOP_GRACE = 10.0
BANNER = "mlx-knife 2.0.8 | MLX backend ready | model loaded in 0.42 s\n"


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


# --- CLI faults -------------------------------------------------------------------------

@dataclass(frozen=True)
class CliFault:
    applies: Callable[[list[str]], bool]
    alter: Callable[[str, int], tuple[str, int]]  # (stdout, exit code) -> (stdout, exit code)
    hang: bool = False


def _run(argv: list[str]) -> bool:
    return bool(argv) and argv[0] == "run"


def _run_json(argv: list[str]) -> bool:
    return _run(argv) and "--json" in argv


def _run_plain(argv: list[str]) -> bool:
    return _run(argv) and "--json" not in argv


def _edit_json(edit: Callable[[dict], None]) -> Callable[[str, int], tuple[str, int]]:
    def alter(out: str, code: int) -> tuple[str, int]:
        try:
            doc = json.loads(out)
        except ValueError:
            return out, code
        if isinstance(doc, dict):
            edit(doc)
            out = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        return out, code
    return alter


def _set_success(doc: dict) -> None:
    if doc.get("status") == "error":
        doc["status"] = "success"


def _leak_json(doc: dict) -> None:
    if isinstance(doc.get("data"), dict) and isinstance(doc["data"].get("response"), str):
        doc["data"]["response"] += "<end_of_turn>"


def _stop_at_length(doc: dict) -> None:
    if isinstance(doc.get("data"), dict) and doc["data"].get("finish_reason") == "length":
        doc["data"]["finish_reason"] = "stop"


def _leak_plain(out: str, code: int) -> tuple[str, int]:
    if code != 0 or not out.strip():
        return out, code
    body = out[:-1] if out.endswith("\n") else out
    return body + "<end_of_turn>\n", code


def _truncate_plain(out: str, code: int) -> tuple[str, int]:
    if code != 0 or not out.strip():
        return out, code
    body = out[:-1] if out.endswith("\n") else out
    return body[:-1] + "\n", code


CLI_FAULTS: dict[str, CliFault] = {
    "cli-exit-0-on-error": CliFault(_run, lambda out, code: (out, 0)),
    "cli-json-success-on-error": CliFault(_run_json, _edit_json(_set_success)),
    "cli-end-token": CliFault(_run_plain, _leak_plain),
    "cli-json-end-token": CliFault(_run_json, _edit_json(_leak_json)),
    "cli-json-banner": CliFault(_run_json, lambda out, code: (BANNER + out, code)),
    "cli-finish-stop-at-length": CliFault(_run_json, _edit_json(_stop_at_length)),
    "cli-answer-truncated": CliFault(_run_plain, _truncate_plain),
    "cli-hang": CliFault(_run, lambda out, code: (out, code), hang=True),
}


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
    parser = argparse.ArgumentParser(prog="mlxk serve", add_help=False)
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    opts, extra = parser.parse_known_args(argv[1:])
    if fault == "exit-at-startup":
        _say(f"cannot load {opts.model}: simulated startup failure ({FAULT_VAR}={fault})")
        return 1

    from faults import proxy  # imported here: the CLI path stays as light as the real command

    name = fault if fault in proxy.FAULTS or fault == "hang-at-startup" else "none"
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: stop.set())
    internal = _free_port()
    real = subprocess.Popen([real_mlxk(), "serve", "--model", opts.model, "--host", "127.0.0.1",
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
        if name == "hang-at-startup":
            _say(f"real server ready on port {internal}; {opts.host}:{opts.port} is never bound ({fault})")
        else:
            try:
                server = proxy.FaultProxy(opts.host, opts.port, internal, proxy.make_fault(name, opts.model))
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
    if argv and argv[0] == "serve":
        return serve(argv, fault)
    return cli(argv, CLI_FAULTS.get(fault))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main(sys.argv[1:]))
