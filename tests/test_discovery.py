"""Discovery: parsing `mlxk list --json`, eligibility, exclusion reasons, gating, sharding."""

import json
import sys
import time
from pathlib import Path

import psutil
import pytest

from support.discovery import Model, classify, format_exclusions, run_mlxk_list, shard_of
from support.errors import DiscoveryError
from support.ram_budget import GB, Budget

BUDGET = Budget(6.0, 24.0, 0.25, "tiers")
BIG = Budget(1000.0, 4000.0, 0.25, "tiers")


def fake_mlxk(tmp_path: Path, body: str) -> tuple[str, ...]:
    """A tiny executable Python program standing in for mlxk."""
    path = tmp_path / "mlxk"
    path.write_text(f"#!{sys.executable}\nimport json, os, sys, time\n{body}")
    path.chmod(0o755)
    return (str(path),)


def printing(tmp_path: Path, answer: object) -> tuple[str, ...]:
    """A fake mlxk that prints answer as JSON (or verbatim when it is a str)."""
    text = answer if isinstance(answer, str) else json.dumps(answer)
    return fake_mlxk(tmp_path, f"sys.stdout.write({text!r})\n")


def entry(name: str, **changes) -> dict:
    """One model as mlxk 2.0.8 lists it: a healthy MLX chat model of 1 GB unless changed."""
    fields = {"name": name, "hash": "0" * 40, "size_bytes": GB, "last_modified": "2025-01-01T00:00:00Z",
              "framework": "MLX", "model_type": "chat", "capabilities": ["text-generation", "chat"],
              "context_length": 2048, "health": "healthy", "runtime_compatible": True, "reason": None,
              "cached": True}
    return fields | changes


def answer(*models: dict) -> dict:
    return {"status": "success", "command": "list", "error": None,
            "data": {"models": list(models), "count": len(models), "system": None}}


def list_error(cmd: tuple[str, ...], timeout: float = 30) -> str:
    """The one-line DiscoveryError run_mlxk_list raises."""
    with pytest.raises(DiscoveryError) as caught:
        run_mlxk_list(cmd, Path("/tmp"), timeout)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# -- parsing the list -----------------------------------------------------------------------

def test_good_output(tmp_path):
    models = [entry("org/a"), entry("org/b", model_type="base", capabilities=["text-generation"])]
    assert run_mlxk_list(printing(tmp_path, answer(*models)), tmp_path, 30) == models


def test_the_list_runs_offline_against_the_given_cache(tmp_path):
    cmd = fake_mlxk(tmp_path, "print(json.dumps({'status': 'success', 'data': {'models': [{'name': "
                              "os.environ['HF_HOME'] + ' ' + os.environ['HF_HUB_OFFLINE'] + ' ' + ' '.join("
                              "sys.argv[1:]), 'size_bytes': 0, 'framework': 'MLX', 'model_type': 'chat', "
                              "'capabilities': [], 'health': 'healthy', 'runtime_compatible': True}]}}))\n")
    cache = tmp_path / "cache"
    assert run_mlxk_list(cmd, cache, 30)[0]["name"] == f"{cache} 1 list --json"


def test_empty_cache(tmp_path):
    assert run_mlxk_list(printing(tmp_path, answer()), tmp_path, 30) == []


def test_the_real_mlxk_on_an_empty_cache(tmp_path):
    (tmp_path / "hub").mkdir()
    assert run_mlxk_list((str(Path(sys.executable).parent / "mlxk"),), tmp_path, 60) == []


def test_malformed_json(tmp_path):
    cmd = printing(tmp_path, "Traceback (most recent call last):\n  File x\n")
    assert list_error(cmd) == "mlxk list --json printed no JSON: 'Traceback (most recent call last):\\n  File x\\n'"


def test_no_json_is_cut_to_120_characters(tmp_path):
    assert list_error(printing(tmp_path, "x" * 500)) == f"mlxk list --json printed no JSON: {'x' * 120!r}"


@pytest.mark.parametrize("missing", ["name", "size_bytes", "framework", "model_type", "capabilities",
                                     "health", "runtime_compatible"])
def test_missing_field(tmp_path, missing):
    broken = {k: v for k, v in entry("org/x").items() if k != missing}
    message = list_error(printing(tmp_path, answer(entry("org/a"), broken)))
    who = "model #2" if missing == "name" else "model 'org/x'"
    assert message == f"mlxk list --json: {who} lacks field {missing!r}"


def test_wrong_field_type(tmp_path):
    message = list_error(printing(tmp_path, answer(entry("org/x", size_bytes="big"))))
    assert message.startswith("mlxk list --json: model 'org/x' field 'size_bytes' is \"big\": "), message


@pytest.mark.parametrize("doc", [[], {"status": "success"}, {"status": "success", "data": None},
                                 {"status": "success", "data": {"models": {}}}])
def test_no_models_list(tmp_path, doc):
    assert list_error(printing(tmp_path, doc)).startswith("mlxk list --json: the answer has no data.models list")


def test_status_error(tmp_path):
    doc = {"status": "error", "command": "list", "data": None,
           "error": {"type": "CacheError", "message": "cache unreadable"}}
    assert list_error(printing(tmp_path, doc)) == \
        "mlxk list --json answered status 'error', expected 'success': 'cache unreadable'"


def test_non_zero_exit(tmp_path):
    cmd = fake_mlxk(tmp_path, "print('warming up', file=sys.stderr)\n"
                              "print('error: unrecognized arguments: --json', file=sys.stderr)\nsys.exit(2)\n")
    assert list_error(cmd) == "mlxk list --json exited 2: error: unrecognized arguments: --json"


def test_missing_executable():
    assert list_error(("/bad/path",)).startswith("mlxk list --json could not start (No such file or directory)")


def test_timeout_kills_the_listing(tmp_path):
    pid_file = tmp_path / "pid"
    cmd = fake_mlxk(tmp_path, f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n")
    started = time.monotonic()
    assert list_error(cmd, timeout=1) == "mlxk list --json did not answer within 1 s: raise -D cli_timeout"
    assert time.monotonic() - started < 15
    assert not psutil.pid_exists(int(pid_file.read_text()))


# -- eligibility ----------------------------------------------------------------------------

def test_chat_and_base_models():
    portfolio = classify([entry("b/base", model_type="base", capabilities=["text-generation"]),
                          entry("a/chat"), entry("c/vision-chat", capabilities=["text-generation", "chat", "vision"])],
                         BUDGET)
    assert [m.id for m in portfolio.chat] == ["a/chat", "c/vision-chat"]
    assert [m.id for m in portfolio.text] == ["a/chat", "b/base", "c/vision-chat"]
    assert portfolio.text[0] == Model("a/chat", ("text-generation", "chat"), GB, "chat", "MLX")
    assert [m.id for m in portfolio.vision] == ["c/vision-chat"]
    assert (portfolio.excluded, portfolio.gated) == ([], {})


def test_speech_and_embedding_models_are_kinds_of_their_own():
    portfolio = classify([entry("a/chat"), entry("w/whisper", model_type="audio", capabilities=["audio"]),
                          entry("e/bert", model_type="embedding", capabilities=["embeddings"])], BUDGET)
    assert [m.id for m in portfolio.audio] == ["w/whisper"]
    assert [m.id for m in portfolio.embeddings] == ["e/bert"]
    assert [m.id for m in portfolio.text] == ["a/chat"]
    assert [m.id for m in portfolio.models] == ["a/chat", "e/bert", "w/whisper"]
    assert portfolio.rows() == {"chat": ["a/chat"], "text": ["a/chat"], "vision": [], "audio": ["w/whisper"],
                                "embeddings": ["e/bert"]}


@pytest.mark.parametrize("changes, reason", [
    ({"health": "unhealthy", "runtime_compatible": False, "reason": "missing model.safetensors"},
     "unhealthy: missing model.safetensors"),
    ({"health": "unhealthy", "framework": "PyTorch"}, "unhealthy: mlxk gave no reason"),
    ({"framework": "PyTorch", "runtime_compatible": False, "reason": "Incompatible framework: PyTorch"},
     "not MLX (framework PyTorch)"),
    ({"runtime_compatible": False, "reason": "model_type foo not supported"},
     "not runtime compatible: model_type foo not supported"),
    ({"model_type": "tts", "capabilities": ["speech"]}, "not a kind of model the suite certifies (model_type tts)"),
    ({"model_type": "chat", "capabilities": ["chat", "vision"]}, "a chat model without the text-generation capability"),
])
def test_exclusion_reasons(changes, reason):
    portfolio = classify([entry("org/x", **changes), entry("org/ok")], BUDGET)
    assert portfolio.excluded == [("org/x", reason)]
    assert [m.id for m in portfolio.text] == ["org/ok"]


def test_include_and_exclude_patterns():
    models = [entry("mlx-community/Qwen-4bit"), entry("mlx-community/Llama-8bit"), entry("other/Qwen-4bit")]
    portfolio = classify(models, BUDGET, include=("mlx-community/*",), exclude=("*-8bit",))
    assert [m.id for m in portfolio.chat] == ["mlx-community/Qwen-4bit"]
    assert portfolio.excluded == [
        ("mlx-community/Llama-8bit", "filtered by pattern (matches -D exclude pattern *-8bit)"),
        ("other/Qwen-4bit", "filtered by pattern (matches none of -D include=mlx-community/*)"),
    ]


def test_patterns_are_case_sensitive():
    assert classify([entry("org/Qwen")], BUDGET, include=("*qwen",)).chat == []


def test_first_reason_wins():
    portfolio = classify([entry("org/x", framework="PyTorch", runtime_compatible=False)], BUDGET,
                         exclude=("org/*",))
    assert portfolio.excluded == [("org/x", "not MLX (framework PyTorch)")]


def test_max_models_keeps_the_first_by_id():
    portfolio = classify([entry(n) for n in ("o/c", "o/a", "o/d", "o/b")], BUDGET, max_models=2)
    assert [m.id for m in portfolio.chat] == ["o/a", "o/b"]
    assert portfolio.excluded == [("o/c", "beyond -D max_models=2"), ("o/d", "beyond -D max_models=2")]


def test_gated_models_stay_with_their_reason():
    portfolio = classify([entry("demo/oversized", size_bytes=6 * GB), entry("demo/small")], BUDGET)
    assert [m.id for m in portfolio.chat] == ["demo/oversized", "demo/small"]
    assert portfolio.gated == {"demo/oversized": "needs 7.2 GB, budget 6.0 GB (25% of 24.0 GB)"}
    assert portfolio.excluded == []


def test_format_exclusions():
    portfolio = classify([entry("demo/pytorch-only", framework="PyTorch", runtime_compatible=False),
                          entry("demo/oversized", size_bytes=6 * GB), entry("demo/ok")], BUDGET)
    assert format_exclusions(portfolio) == [
        "excluded demo/pytorch-only: not MLX (framework PyTorch)",
        "gated demo/oversized: needs 7.2 GB, budget 6.0 GB (25% of 24.0 GB)",
    ]


# -- sharding -------------------------------------------------------------------------------

IDS = [f"org/model-{i:02}" for i in range(23)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 23, 30])
def test_shards_are_disjoint_and_cover_everything(n):
    shards = [shard_of(IDS, (i, n)) for i in range(1, n + 1)]
    assert sorted(sum(shards, [])) == sorted(IDS)
    assert sum(len(s) for s in shards) == len(IDS)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_shards_are_deterministic_whatever_the_order():
    assert shard_of(IDS, (2, 3)) == shard_of(list(reversed(IDS)), (2, 3)) == IDS[1::3]


@pytest.mark.parametrize("n", [2, 3, 5])
def test_classified_shards_cover_the_portfolio(n):
    models = [entry(i) for i in IDS]
    whole = {m.id for m in classify(models, BIG).text}
    parts = [classify(models, BIG, shard=(i, n)) for i in range(1, n + 1)]
    ids = [m.id for p in parts for m in p.text]
    assert len(ids) == len(set(ids)) and set(ids) == whole
    for i, part in enumerate(parts, start=1):
        assert {r for _, r in part.excluded} <= {f"in another shard ({k}/{n})" for k in range(1, n + 1) if k != i}
        assert len(part.excluded) + len(part.text) == len(IDS)


def test_another_shards_model_names_its_shard():
    portfolio = classify([entry("o/a"), entry("o/b"), entry("o/c")], BUDGET, shard=(1, 2))
    assert [m.id for m in portfolio.chat] == ["o/a", "o/c"]
    assert portfolio.excluded == [("o/b", "in another shard (2/2)")]


def test_a_shard_picks_any_model_of_a_kind_from_the_whole_portfolio():
    """Scenarios not per model run in shard 1 only: they pick what an unsharded run picks,
    even when that model's rows are in another shard."""
    models = [entry("o/a", model_type="audio", capabilities=["audio"]), entry("o/b"),
              entry("o/c", size_bytes=int(9e9)), entry("o/d")]
    whole = classify(models, BUDGET)
    shard = classify(models, BUDGET, shard=(2, 2))  # o/b and o/d
    assert [m.id for m in shard.audio] == [] and shard.first("audio") == whole.first("audio") == "o/a"
    assert shard.first("chat") == whole.first("chat") == "o/b"
    assert whole.first("chat", lambda m: m.id != "o/b") == "o/d"  # o/c: over the budget, gated
    assert whole.anywhere is whole and whole.whole is None
