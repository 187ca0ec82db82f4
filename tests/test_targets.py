"""The target seam: what each target spells, lacks, and how a lacking feature skips a scenario."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from support.config import Settings
from support.errors import ConfigError, HarnessError
from support.targets import (FEATURES, MlxKnife, MlxLm, MlxOpenAIServer, NotOffered, make_target, needed_features,
                             not_offered_reason, require)

ROOT = Path(__file__).resolve().parents[1]


def fake_venv(tmp_path: Path, *names: str) -> Path:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in names:
        (bin_dir / name).write_text("#!/bin/sh\n")
    return bin_dir.parent


@pytest.fixture
def mlx_lm(tmp_path) -> MlxLm:
    return MlxLm.locate(fake_venv(tmp_path, "mlx_lm.server", "mlx_lm.generate", "python"), tmp_path)


def test_mlx_lm_is_found_in_a_venv_its_bin_folder_or_beside_an_executable(tmp_path):
    venv = fake_venv(tmp_path, "mlx_lm.server", "mlx_lm.generate", "python")
    found = {MlxLm.locate(p, tmp_path).bin_dir for p in (venv, venv / "bin", venv / "bin" / "mlx_lm.server")}
    assert found == {venv / "bin"}


def test_a_venv_without_mlx_lm_is_refused_with_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match=r"no mlx_lm.server, mlx_lm.generate in .*point -D mlx_lm"):
        MlxLm.locate(fake_venv(tmp_path, "python"), tmp_path)


def test_mlx_lm_server_is_ready_after_a_first_real_answer(mlx_lm, tmp_path):
    server = mlx_lm.server("org/m", tmp_path, 5.0)
    assert server.command == (str(mlx_lm.bin_dir / "mlx_lm.server"),)
    assert server.args == ("--model", "org/m") and server.name == "mlx_lm.server"
    path, payload = server.first_answer
    assert path == "/v1/completions" and payload["model"] == "org/m" and payload["max_tokens"] == 1
    assert server.env["HF_HOME"] == str(tmp_path) and server.env["HF_HUB_OFFLINE"] == "1"
    assert "first answer" in mlx_lm.startup_measures and "/health" in mlx_lm.startup_measures


def test_mlxk_server_is_ready_on_health_alone(tmp_path):
    server = MlxKnife(("mlxk",), tmp_path).server("org/m", tmp_path, 5.0)
    assert server.first_answer is None and server.name == "mlxk serve"


def test_mlx_lm_generate_arguments(mlx_lm):
    args = mlx_lm.ask_args("org/m", "Hi?", {"temperature": 0, "top_p": 0.9, "max_tokens": 5, "repetition_penalty": 1.0})
    assert args == ("--model", "org/m", "--prompt", "Hi?", "--temp", "0", "--top-p", "0.9", "--max-tokens", "5",
                    "--verbose", "False")
    assert mlx_lm.ask_args("org/m", None, {}) == ("--model", "org/m", "--verbose", "False")
    assert mlx_lm.ask_args("org/m", "-", {})[2:4] == ("--prompt", "-")  # stdin: no flag needed
    assert mlx_lm.command == (str(mlx_lm.bin_dir / "mlx_lm.generate"),) and mlx_lm.env("pipes") == {}


# What neither mlx_lm nor mlx_openai_server offers (support/targets.py TextOnly).
TEXT_ONLY_LACKS = [
    (lambda t: t.list_args(), "listing"),
    (lambda t: t.show_args("m"), "model_card"),
    (lambda t: t.embed_args("m", "x"), "embeddings"),
    (lambda t: t.env("embeddings"), "embeddings"),
    (lambda t: t.kind_server("embed-serve", "m", Path("/x"), 1.0), "embeddings"),
    (lambda t: t.image_flags(["/a.png"], None), "vision"),
    (lambda t: t.audio_flags("/a.wav", None, False), "speech"),
]
LACKS = [("mlx_lm", call, feature) for call, feature in [
    (lambda t: t.ask_args("m", "p", {}, "--json"), "cli_json"),
    (lambda t: t.ask_args("m", "p", {}, "--no-stream"), "cli_no_stream"),
    (lambda t: t.ask_args("m", "p", {"repetition_penalty": 1.1}), "cli_repetition_penalty"),
    *TEXT_ONLY_LACKS]] + [("openai_server", call, feature) for call, feature in [
    (lambda t: t.ask_args("m", "p", {}), "cli"),
    (lambda t: t.ask_args("m", "-", {"temperature": 0}), "cli"),
    (lambda t: require(t, "text_completions"), "text_completions"),
    *TEXT_ONLY_LACKS]]


@pytest.mark.parametrize("target, call, feature", LACKS)
def test_asking_a_target_for_what_it_lacks_is_a_harness_error_naming_the_tag(request, target, call, feature):
    target = request.getfixturevalue(target)
    with pytest.raises(NotOffered, match=f"tag the scenario @needs.{feature}") as raised:
        call(target)
    assert isinstance(raised.value, HarnessError) and not isinstance(raised.value, AssertionError)
    assert feature in target.lacks and set(target.lacks) <= set(FEATURES)


def test_mlxk_lacks_nothing_and_spells_its_listing():
    target = MlxKnife(("mlxk",), Path("/x"))
    assert target.lacks == frozenset() and target.list_args() == ("list", "--json")
    assert target.show_args("org/m") == ("show", "org/m", "--json") and target.request_model("org/m") == "org/m"


def test_a_scenario_is_skipped_only_for_a_feature_the_target_lacks(mlx_lm):
    tags = ["live_e2e", "needs.vision", "needs.cli_json"]
    assert needed_features(tags) == ["cli_json", "vision"]
    reason = not_offered_reason(mlx_lm, tags)
    assert reason.startswith("not offered by target mlx_lm") and FEATURES["vision"] in reason
    assert FEATURES["cli_json"] in reason  # every missing feature is named
    assert not_offered_reason(mlx_lm, ["live_e2e", "server"]) is None
    assert not_offered_reason(MlxKnife(("mlxk",), Path("/x")), tags) is None


def test_an_unknown_feature_tag_is_a_spec_mistake():
    with pytest.raises(ConfigError, match=r"unknown @needs.jsn \(known: @needs.cli_json"):
        needed_features(["needs.jsn"])


def test_every_needs_tag_of_the_spec_names_a_known_feature():
    used = {m for path in ROOT.glob("features/**/*.feature")
            for m in re.findall(r"@needs\.(\w+)", path.read_text(encoding="utf-8"))}
    assert used and used <= set(FEATURES), sorted(used - set(FEATURES))
    assert set(MlxLm.lacks) <= set(FEATURES)


def test_the_suites_venv_is_the_default_mlx_lm_and_its_version_is_asked():
    target = make_target(Settings(target="mlx_lm"), Path("/x"))
    from importlib.metadata import version
    assert target.bin_dir == Path(sys.executable).parent and target.version == version("mlx-lm")
    assert {"llama", "qwen2", "mistral"} <= target.model_types()  # "mistral" via mlx-lm's remapping


@pytest.fixture
def openai_server(tmp_path) -> MlxOpenAIServer:
    return MlxOpenAIServer.locate(fake_venv(tmp_path / "mos", "mlx-openai-server", "python"), tmp_path)


def test_mlx_openai_server_launches_one_text_model_and_is_ready_on_health(openai_server, tmp_path):
    server = openai_server.server("org/m", tmp_path, 5.0)
    assert server.command == (str(openai_server.bin_dir / "mlx-openai-server"),)
    assert server.args == ("launch", "--model-path", "org/m", "--model-type", "lm", "--no-log-file")
    assert server.name == "mlx-openai-server launch" and server.ready_path == "/health"
    assert server.first_answer is None  # /health answers 503 until the model is loaded
    assert server.env["HF_HOME"] == str(tmp_path) and server.env["HF_HUB_OFFLINE"] == "1"
    assert "503" in openai_server.startup_measures and openai_server.request_model("org/m") == "org/m"


def test_mlx_openai_server_is_found_in_a_venv_and_its_absence_says_how_to_make_it(tmp_path):
    venv = fake_venv(tmp_path, "mlx-openai-server", "python")
    assert MlxOpenAIServer.locate(venv / "bin" / "mlx-openai-server", tmp_path).bin_dir == venv / "bin"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no mlx-openai-server, python in .*python -m support.openai_server_venv"):
        MlxOpenAIServer.locate(tmp_path / "empty", tmp_path)


def test_only_the_server_alone_lacks_a_command_line_and_text_completions(openai_server, mlx_lm):
    assert {"cli", "text_completions"} <= openai_server.lacks
    assert not {"cli", "text_completions"} & (mlx_lm.lacks | MlxKnife(("mlxk",), Path("/x")).lacks)
    require(mlx_lm, "text_completions")  # offered: no error
    reason = not_offered_reason(openai_server, ["needs.cli"])
    assert reason == f"not offered by target mlx_openai_server : {FEATURES['cli']}"  # version unprobed here


def _scenarios():
    """(file, scenario name, its effective tags, its step texts) of every scenario in the spec."""
    from behave.parser import parse_file
    for path in sorted(ROOT.glob("features/**/*.feature")):
        for scenario in parse_file(str(path)).walk_scenarios():
            yield path.name, scenario.name, set(scenario.effective_tags), [s.name for s in scenario.steps]


@pytest.mark.parametrize("words, feature", [("command line", "cli"), ("text completion", "text_completions")])
def test_every_scenario_that_uses_a_feature_some_target_lacks_is_tagged_for_it(words, feature):
    untagged = [f"{file}: {name}" for file, name, tags, steps in _scenarios()
                if any(words in text for text in [name, *steps]) and f"needs.{feature}" not in tags]
    assert not untagged, f"tag these @needs.{feature} (they use {FEATURES[feature]}): {untagged}"
