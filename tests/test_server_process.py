"""LocalServer against stand-in servers (tests/standins/fake_sut.py)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pytest
import requests

from processes import alive
from support import server_process
from support.errors import SuiteError
from support.server_process import LocalServer, ServerStartError, file_safe

FAKE_SUT = str(Path(__file__).parent / "standins" / "fake_sut.py")
SUT = (sys.executable, FAKE_SUT)

MakeServer = Callable[..., LocalServer]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[MakeServer]:
    """Builds LocalServers for stand-in models; stops all of them at the end."""
    made: list[LocalServer] = []

    def _make(model: str, timeout: float = 10.0, env: dict[str, str] | None = None) -> LocalServer:
        server = LocalServer(model, SUT, env, tmp_path / "logs", timeout)
        made.append(server)
        return server

    yield _make
    for server in made:
        server.stop(grace=0.5)


def test_ok_server_is_ready_measured_and_fully_stopped(make: MakeServer) -> None:
    server = make("standin/ok", env={"MLX_E2E_MARK": "yes"}).start()
    answer = requests.get(f"{server.base_url}/health", timeout=2)
    assert answer.status_code == 200
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    assert 0 < server.startup_seconds < 10
    assert server.rss_bytes() > 1_000_000
    environ = psutil.Process(server.pid).environ()
    assert environ["HF_HUB_OFFLINE"] == "1" and environ["MLX_E2E_MARK"] == "yes"
    assert server.log_path.name == f"serve-standin--ok-port{server.port}.log"
    assert "listening on" in server.tail()
    pids = server.pids()
    assert pids == [server.pid]
    server.stop()
    assert alive(pids) == [] and not server.alive()
    server.stop()  # idempotent


def test_context_manager_stops_on_exit(tmp_path: Path) -> None:
    with LocalServer("standin/ok", SUT, None, tmp_path, 10.0) as server:
        pids = server.pids()
        assert alive(pids) == pids
    assert alive(pids) == []


def test_early_exit_fails_at_once_with_one_line(make: MakeServer) -> None:
    server = make("standin/early-exit")
    began = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        server.start()
    assert time.monotonic() - began < 1.5
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "mlxk serve for standin/early-exit exited with code 1 before it was ready; log: ")
    assert "last lines: " in message and " | " in message
    assert "Error: model weights are corrupt" in message
    assert alive([server.pid]) == []


def test_never_ready_times_out_and_leaves_nothing(make: MakeServer) -> None:
    server = make("standin/never-ready", timeout=2.0)
    began = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        server.start()
    elapsed = time.monotonic() - began
    assert 2.0 <= elapsed < 4.0
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "mlxk serve for standin/never-ready was not ready within 2 s; log: ")
    assert "listening on" in message
    assert alive([server.pid]) == []


def test_slow_ready_startup_seconds(make: MakeServer) -> None:
    server = make("standin/slow-ready").start()
    assert 1.0 <= server.startup_seconds < 5.0


def test_ignored_sigterm_takes_the_sigkill_path(make: MakeServer) -> None:
    server = make("standin/ignore-sigterm").start()
    pids = server.pids()
    began = time.monotonic()
    server.stop(grace=0.5)
    assert time.monotonic() - began >= 0.5
    assert server._proc is not None and server._proc.returncode == -signal.SIGKILL
    assert alive(pids) == []


def _worker_pids(server: LocalServer) -> list[int]:
    """PIDs of the server's descendants, waiting (bounded) until the worker's helper exists."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pids = [pid for pid in server.pids() if pid != server.pid]
        if len(pids) >= 2:
            return pids
        time.sleep(0.02)
    raise AssertionError(f"descendants never appeared: {server.pids()}")


@pytest.mark.parametrize("mode", ["spawns-child", "orphans-child"])
def test_children_in_a_new_session_are_ended(make: MakeServer, mode: str) -> None:
    server = make(f"standin/{mode}").start()
    descendants = _worker_pids(server)
    assert any(os.getsid(pid) != os.getsid(server.pid) for pid in descendants)
    assert server.rss_bytes() > psutil.Process(server.pid).memory_info().rss
    server.stop(grace=2.0)
    assert alive([server.pid, *descendants]) == []


def test_port_taken_after_choice_is_retried(
    make: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = server_process.choose_free_port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        calls: list[int] = []

        def choose(host: str) -> int:
            calls.append(1)
            return taken if len(calls) == 1 else real(host)

        monkeypatch.setattr(server_process, "choose_free_port", choose)
        server = make("standin/ok").start()
        assert server.port != taken and len(calls) == 2
        first_log = server.log_dir / f"serve-standin--ok-port{taken}.log"
        assert "Address already in use" in first_log.read_text()


def test_port_always_taken_gives_up_after_three(
    make: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        calls: list[int] = []
        monkeypatch.setattr(server_process, "choose_free_port",
                            lambda host: calls.append(1) or taken)
        with pytest.raises(ServerStartError, match="Address already in use"):
            make("standin/ok").start()
        assert len(calls) == 3


def test_interrupt_while_starting_ends_the_server(
    make: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make("standin/never-ready")
    real_get = requests.get
    calls: list[int] = []

    def get(*args: object, **kwargs: object) -> requests.Response:
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_get(*args, **kwargs)

    monkeypatch.setattr(server_process.requests, "get", get)
    with pytest.raises(KeyboardInterrupt):
        server.start()
    assert server.pid is not None and alive([server.pid]) == []


def test_start_error_is_a_suite_error() -> None:
    assert issubclass(ServerStartError, SuiteError)
    assert file_safe("mlx-community/Qwen2.5 0.5B") == "mlx-community--Qwen2.5_0.5B"


def test_the_target_gives_the_arguments_and_the_readiness_path(tmp_path: Path) -> None:
    """`embed-serve MODEL`: the argv the target gives, its name in the log file and in messages."""
    with LocalServer("standin/ok", SUT, None, tmp_path, 10.0, args=("embed-serve", "standin/ok")) as server:
        assert requests.get(f"{server.base_url}/health", timeout=2).status_code == 200
        assert server.log_path.name == f"embed-serve-standin--ok-port{server.port}.log"
        assert "embed-serve standin/ok --host" in " ".join(psutil.Process(server.pid).cmdline())
    never = LocalServer("standin/ok", SUT, None, tmp_path, 1.0, args=("embed-serve", "standin/ok"),
                        ready_path="/not-there")
    with pytest.raises(ServerStartError, match=r"^mlxk embed-serve for standin/ok was not ready within 1 s"):
        never.start()
