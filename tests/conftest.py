"""Shared fixtures of the suite's own tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from support.demo_portfolio import DEFAULT_ROOT, ensure_built


@pytest.fixture(scope="session")
def demo_root() -> Path:
    """The demo portfolio, built (or kept, when current) in the default root.

    The default root is the one `make e2e` uses, so `make test` and `make e2e` share one
    build: a cold build takes about 35 s, a warm one is a no-op.
    """
    ensure_built(DEFAULT_ROOT)
    return DEFAULT_ROOT


@pytest.fixture(scope="session")
def mlxk() -> tuple[str, ...]:
    """The SUT's command line, from this interpreter's environment."""
    return (str(Path(sys.executable).parent / "mlxk"),)


@pytest.fixture(scope="session")
def run_cache(request, demo_root, tmp_path_factory):
    """The session's cache of behave runs against the fault shim (tests/faults/runs.py)."""
    from faults import runs

    cache = runs.shared(lambda: tmp_path_factory.mktemp("fault-runs"))
    request.addfinalizer(runs.close_shared)
    return cache


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "live: loads models or runs the real SUT (make test-fast leaves these out)")


def pytest_collection_modifyitems(config, items) -> None:
    """A test that uses the demo portfolio or the SUT's command line is a live one."""
    for item in items:
        if {"demo_root", "mlxk"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.live)
