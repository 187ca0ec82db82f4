"""Stand-in for the SUT command: `fake_sut.py serve --model standin/MODE --host H --port P`
(or `fake_sut.py embed-serve standin/MODE --host H --port P`, the same behaviours).

MODE (the model name's last part) picks the behaviour:
  ok              serves GET /health 200
  early-exit      prints a few lines and exits with code 1
  never-ready     serves GET /health 503 forever
  slow-ready      waits 1 s, then serves like ok
  ignore-sigterm  ignores SIGTERM, serves like ok
  spawns-child    like mlxk 2.0.8: runs the server as a child in a new session, forwards
                  SIGTERM/SIGINT/SIGHUP to its group (grace, then SIGKILL); the child itself
                  has a child of its own in its group
  orphans-child   runs the server as a child in a new session and dies on SIGTERM without
                  forwarding it (mlx-knife issue #60)
Every process ends itself after MAX_LIFE seconds so a broken test never leaves it behind.
Standard library only.
"""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import subprocess
import sys
import threading
import time

MAX_LIFE = 60.0


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        code = self.status if self.path == "/health" else 404
        body = b'{"status": "ok", "service": "standin"}'
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _watchdog() -> None:
    """End this process after MAX_LIFE seconds whatever happens."""
    timer = threading.Timer(MAX_LIFE, lambda: os._exit(3))
    timer.daemon = True
    timer.start()


def _serve(host: str, port: int, status: int = 200) -> None:
    """Bind and serve forever (raises OSError 'Address already in use' when taken)."""
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    print(f"standin: listening on {host}:{port}", flush=True)
    server.serve_forever(poll_interval=0.05)


def _supervise(argv: list[str], forward: bool) -> int:
    """Run ``argv`` in a new session; forward stop signals to its group when asked."""
    stop = {"sig": 0}

    def on_stop(signum: int, frame: object) -> None:
        stop["sig"] = signum

    if forward:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, on_stop)
    child = subprocess.Popen(argv, start_new_session=True)
    print(f"standin: supervisor {os.getpid()} started worker {child.pid}", flush=True)
    while child.poll() is None and not stop["sig"]:
        time.sleep(0.02)
    if child.returncode is not None:
        return child.returncode
    os.killpg(child.pid, signal.SIGTERM)
    try:
        return child.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        return child.wait(timeout=5.0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve", "worker", "embed-serve"])
    parser.add_argument("positional_model", nargs="?")  # embed-serve MODEL
    parser.add_argument("--model")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    args.model = args.model or args.positional_model
    if not args.model:
        parser.error("a model is required (--model M, or embed-serve M)")
    _watchdog()
    mode = args.model.rsplit("/", 1)[-1]
    print(f"standin: mode={mode} pid={os.getpid()} pgid={os.getpgrp()}", flush=True)
    if args.command == "worker":
        helper = subprocess.Popen(  # same group: a teardown of the group must take it along
            [sys.executable, "-c", f"import time; time.sleep({MAX_LIFE})"])
        print(f"standin: worker helper {helper.pid}", flush=True)
        _serve(args.host, args.port)
        return 0
    if mode == "early-exit":
        print("loading model...", flush=True)
        print("Error: model weights are corrupt", file=sys.stderr, flush=True)
        return 1
    if mode == "never-ready":
        _serve(args.host, args.port, status=503)
    elif mode == "slow-ready":
        time.sleep(1.0)
        _serve(args.host, args.port)
    elif mode == "ignore-sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _serve(args.host, args.port)
    elif mode in ("spawns-child", "orphans-child"):
        worker = [sys.executable, os.path.abspath(__file__), "worker", "--model", args.model,
                  "--host", args.host, "--port", str(args.port)]
        return _supervise(worker, forward=(mode == "spawns-child"))
    else:
        _serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
