"""The mlx-openai-server venv recipe: pinned within the release's declared ranges, made once, reused."""

from __future__ import annotations

import json

import pytest
from packaging.requirements import Requirement

from support import openai_server_venv as osv
from support.errors import HarnessError

# mlx-openai-server 1.8.1's Requires-Dist (its wheel's METADATA), and what it implies for torch.
DECLARED = {
    "click": "<8.4,>=8.2.1", "dill": "<0.5,>=0.4", "fastapi": "<0.130,>=0.115.14",
    "loguru": "<0.8,>=0.7.3",
    "numpy": "<2.4,>=2.2.0", "openai": "<3,>=2.21", "openai-harmony": "<0.1,>=0.0.8", "outlines": "<1.2,>=1.1.1",
    "pillow": "<13.0,>=12.1.1", "python-multipart": "<0.0.25,>=0.0.20", "rich": "<15,>=14",
    "uvicorn": "<0.40,>=0.35.0", "xxhash": "<4,>=3.6",
    "torch": ">=2.8,<2.15",  # torchvision>=0.23,<0.30 pairs with torch 2.8 ... 2.14
    # what outlines 1.1.1, fastapi 0.129.2 and sympy 1.14.0 declare
    "outlines_core": "==0.1.26", "starlette": "<1.0.0,>=0.40.0", "mpmath": "<1.4,>=1.1.0",
}


def test_every_pin_is_exact_and_within_the_declared_range():
    pins = {Requirement(p).name: Requirement(p) for p in osv.PINS}
    assert all(str(r.specifier).startswith("==") for r in pins.values()), osv.PINS
    for name, declared in DECLARED.items():
        version = next(iter(pins[name].specifier)).version
        assert version in Requirement(f"{name}{declared}").specifier, f"{name}=={version} not in {declared}"
    assert len(pins) == len(osv.PINS)  # no package pinned twice


def test_a_venv_with_the_same_stamp_is_reused_without_running_anything(tmp_path, monkeypatch):
    venv = tmp_path / f"mlx-openai-server-{osv.VERSION}"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "mlx-openai-server").write_text("#!/bin/sh\n")
    (venv / osv.STAMP).write_text(json.dumps({"mlx-openai-server": osv.VERSION, "pins": list(osv.PINS)}))
    monkeypatch.setattr(osv, "_run", lambda *a, **k: pytest.fail(f"ran {a}"))
    assert osv.mlx_openai_server_venv(root=tmp_path) == venv


def test_another_release_is_refused_until_its_dependencies_are_known(tmp_path, monkeypatch):
    monkeypatch.setattr(osv, "_run", lambda *a, **k: pytest.fail(f"ran {a}"))
    with pytest.raises(HarnessError, match=r"only 1\.8\.1's text-path dependencies are known"):
        osv.mlx_openai_server_venv("1.9.0", root=tmp_path)


def test_a_failing_command_says_what_failed_with_its_last_lines():
    with pytest.raises(HarnessError, match=r"(?s)the step: exit 3: .*boom"):
        osv._run(["sh", "-c", "echo boom >&2; exit 3"], "the step", 10)
