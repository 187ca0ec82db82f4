"""support.cli_runner: stdin input and environment changes reach the command and its evidence."""

from __future__ import annotations

import sys

from support.cli_runner import cli_attachments, run_cli, sut_env
from support.targets import MlxKnife

ECHO = ("import os, sys; print(sys.stdin.read().upper(), end=''); "
        "print('|', os.environ.get('FLAG_ON'), os.environ.get('FLAG_OFF'), os.environ['HF_HUB_OFFLINE'])")


def test_input_and_environment_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("FLAG_OFF", "1")
    r = run_cli((sys.executable,), ("-c", ECHO), tmp_path, 30, input="hello\n", env={"FLAG_ON": "1", "FLAG_OFF": None})
    assert r.returncode == 0 and r.stdout == "HELLO\n| 1 None 1\n"
    assert r.input == "hello\n" and "stdin: 'hello\\n'" in r.describe()
    assert r.command_line.startswith("env FLAG_ON=1 -u FLAG_OFF ")
    assert cli_attachments(r)["stdin"] == "hello\n"


def test_stdin_stays_closed_without_input(tmp_path):
    r = run_cli((sys.executable,), ("-c", ECHO), tmp_path, 30)
    assert r.stdout.startswith("| None") and r.input is None and "stdin" not in cli_attachments(r)
    assert sut_env(tmp_path, {"HF_HUB_OFFLINE": None})["HF_HOME"] == str(tmp_path)


def test_target_spells_the_embedding_commands(tmp_path):
    target = MlxKnife(("mlxk",), tmp_path)
    assert target.env("embeddings", "pipes") == {"MLXK2_ENABLE_ALPHA_FEATURES": "1", "MLXK2_ENABLE_PIPES": "1"}
    assert target.env(without=("embeddings",)) == {"MLXK2_ENABLE_ALPHA_FEATURES": None}
    assert target.embed_args("org/m", "-", "--query") == ("embed", "org/m", "-", "--query")
    assert target.embed_args("org/m", None, "--batch") == ("embed", "org/m", "--batch")
    backend = target.kind_server("embed-serve", "org/e", tmp_path, 5.0)
    assert backend.args == ("embed-serve", "org/e") and backend.env["MLXK2_ENABLE_ALPHA_FEATURES"] == "1"
    proxy = target.kind_server("serve --embed-backend http://127.0.0.1:9", "org/chat", tmp_path, 5.0)
    assert proxy.args == ("serve", "--model", "org/chat", "--embed-backend", "http://127.0.0.1:9")
    assert target.server("org/chat", tmp_path, 5.0).args == ("serve", "--model", "org/chat")
