"""ServerPool against stand-in servers, including Ctrl-C and SIGTERM on a driver script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from processes import alive, with_default_sigint
from support.errors import SuiteError
from support.server_pool import ServerPool
from support.server_process import LocalServer, ServerStartError

STANDINS = Path(__file__).parent / "standins"
SUT = (sys.executable, str(STANDINS / "fake_sut.py"))
REPO = Path(__file__).resolve().parents[1]
NEED = 1e9  # bytes each stand-in model "needs"; the stand-ins' own RSS is ~20 MB
A, B, C = "standin-a/ok", "standin-b/ok", "standin-c/ok"


def make_pool(tmp_path: Path, budget: float, reuse: bool = True) -> ServerPool:
    return ServerPool(
        factory=lambda model: LocalServer(model, SUT, None, tmp_path, 10.0),
        budget_bytes=budget,
        need_bytes=lambda model: NEED,
        reuse=reuse,
    )


@pytest.fixture
def pool_of_two(tmp_path: Path) -> Iterator[ServerPool]:
    """Budget fits two servers (2 x ~1.02 GB) but not three."""
    pool = make_pool(tmp_path, budget=2.5 * NEED)
    yield pool
    pool.stop_all()


def test_reuse_and_lru_eviction(pool_of_two: ServerPool) -> None:
    pool = pool_of_two
    a, b = pool.acquire(A), pool.acquire(B)
    assert pool.resident() == [A, B] and pool.starts == 2
    assert pool.acquire(A) is a and a.pid == pool.acquire(A).pid  # reuse; A now most recent
    b_pids = b.pids()
    c = pool.acquire(C)
    assert pool.resident() == [A, C] and pool.starts == 3
    assert alive(b_pids) == []
    assert [e[:2] for e in pool.events] == [("start", A), ("start", B), ("evict", B), ("start", C)]
    assert pool.startup_seconds_total == pytest.approx(
        sum(e[2] for e in pool.events if e[0] == "start"))
    assert NEED * 2 < pool.total_cost() < 2.5 * NEED
    all_pids = a.pids() + c.pids()
    pool.stop_all()
    assert alive(all_pids) == [] and pool.resident() == []
    pool.stop_all()  # idempotent
    assert [e[:2] for e in pool.events[-2:]] == [("stop", A), ("stop", C)]


def test_room_for_a_cli_process_evicts_lru_servers(pool_of_two: ServerPool) -> None:
    pool = pool_of_two
    pool.acquire(A)
    pool.acquire(B)
    pool.make_room(0.1 * NEED)
    assert pool.resident() == [A, B], "a small process fits beside both servers"
    pool.make_room(pool.process_cost(C))
    assert pool.resident() == [B], "one more model-sized process: the least recently used server went"
    pool.make_room(10 * NEED)
    assert pool.resident() == [], "a process over the budget: every server went (one process is always allowed)"
    assert [e[:2] for e in pool.events if e[0] != "start"] == [("evict", A), ("evict", B)]


def test_dead_server_is_replaced(pool_of_two: ServerPool) -> None:
    first = pool_of_two.acquire(A)
    os.kill(first.pid, signal.SIGKILL)  # a process this test started, ended by its PID
    assert first.ended_within(5.0) and first.how_it_ended() == "was killed by SIGKILL"
    second = pool_of_two.acquire(A)
    assert second is not first and second.pid != first.pid and second.alive()
    assert pool_of_two.starts == 2
    assert [e[:2] for e in pool_of_two.events] == [("start", A), ("died", A), ("start", A)]


def test_one_server_always_allowed(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, budget=1.0)
    try:
        a = pool.acquire(A)
        assert pool.resident() == [A]
        pool.acquire(B)
        assert pool.resident() == [B] and alive([a.pid]) == []
    finally:
        pool.stop_all()


def test_without_reuse_every_acquire_starts_fresh(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, budget=1e15, reuse=False)
    try:
        first = pool.acquire(A)
        second = pool.acquire(A)
        assert second.pid != first.pid and alive([first.pid]) == []
        third = pool.acquire(B)
        assert alive([second.pid]) == [] and pool.resident() == [B]
        assert pool.starts == 3
    finally:
        pool.stop_all()


def _run_driver(tmp_path: Path, sig: signal.Signals) -> tuple[int, list[int], str]:
    """Start the driver, read its server PIDs, send ``sig``, wait (bounded) for its exit."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(
        with_default_sigint([sys.executable, str(STANDINS / "pool_driver.py"), str(tmp_path)]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )
    try:
        line = driver.stdout.readline()  # the driver prints it or exits (bounded by its own 30 s)
        assert line, driver.stderr.read()
        pids = json.loads(line)["pids"]
        assert len(alive(pids)) >= 4  # a; b's supervisor, worker and helper
        driver.send_signal(sig)
        code = driver.wait(timeout=15)
        return code, pids, driver.stderr.read()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(timeout=5)


def test_ctrl_c_ends_every_server(tmp_path: Path) -> None:
    code, pids, stderr = _run_driver(tmp_path, signal.SIGINT)
    assert code == -signal.SIGINT and "KeyboardInterrupt" in stderr
    assert alive(pids) == []


def test_sigterm_with_handler_ends_every_server(tmp_path: Path) -> None:
    code, pids, _ = _run_driver(tmp_path, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    assert alive(pids) == []


def test_failed_start_is_not_resident(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, budget=1e15)
    try:
        with pytest.raises(ServerStartError, match="exited with code 1"):
            pool.acquire("standin/early-exit")
        assert pool.resident() == [] and pool.starts == 0
        assert pool.acquire(A).alive() and pool.starts == 1
    finally:
        pool.stop_all()


def test_servers_are_kept_by_kind_and_model(tmp_path: Path) -> None:
    """One model can have a chat server and an embed-serve backend at once; each kind is reused."""
    kinds = []

    def kind_factory(kind: str, model: str) -> LocalServer:
        kinds.append(kind)
        return LocalServer(model, SUT, None, tmp_path, 10.0, args=("embed-serve", model))

    pool = ServerPool(lambda model: LocalServer(model, SUT, None, tmp_path, 10.0), 5 * NEED, lambda m: NEED,
                      kind_factory=kind_factory)
    try:
        plain, embed = pool.acquire(A), pool.acquire(A, "embed-serve")
        assert plain is not embed and pool.acquire(A, "embed-serve") is embed and kinds == ["embed-serve"]
        assert pool.resident() == [A, f"{A} (embed-serve)"]
        assert [e[:2] for e in pool.events] == [("start", A), ("start", f"{A} (embed-serve)")]
    finally:
        pool.stop_all()
    bare = make_pool(tmp_path, budget=5 * NEED)
    with pytest.raises(SuiteError, match="starts no 'embed-serve' servers"):
        bare.acquire(A, "embed-serve")


def test_a_retired_server_is_stopped_and_refused(pool_of_two: ServerPool) -> None:
    from support.server_pool import Retired

    pool = pool_of_two
    a, b = pool.acquire(A), pool.acquire(B)
    pids = a.pids()
    pool.retire(a, "POST /v1/chat/completions: no answer within 5 s")
    assert alive(pids) == [] and pool.resident() == [B] and ("hung", A) in [e[:2] for e in pool.events]
    with pytest.raises(Retired, match="no answer within 5 s"):
        pool.acquire(A)
    assert pool.acquire(B) is b  # other servers are unaffected
    pool.retire(a, "again")  # a server the pool no longer holds: left alone
