"""The demo speech models: built into a temporary cache, seen and run by the SUT as intended.

The builder trains one tiny Whisper-architecture model and verifies it through mlx-audio;
here the SUT (`mlxk list`, `mlxk run --audio`) must list both repos with the intended
capabilities, transcribe and translate every clip to its golden text, and refuse to
translate with the English-only variant before running it.
"""

from __future__ import annotations

import io
import json
import sys
import wave
from pathlib import Path

import pytest

from support.cli_runner import run_cli
from support.demo_portfolio import hf_cache, speech

pytestmark = pytest.mark.live  # builds the speech models and runs the SUT's command line

MLXK = (str(Path(sys.executable).parent / "mlxk"),)
RUN_TIMEOUT = 120.0
MULTILINGUAL = f"{speech.ORG}/whisper-style"
ENGLISH_ONLY = f"{speech.ORG}/whisper-tiny.en-style"
PROGRESS = "frames/s"  # mlx-audio's progress bar: the model decoded something


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, dict]]:
    """(HF cache root, directory of the clips, facts by repo id), built once for the module."""
    base = tmp_path_factory.mktemp("speech")
    repos, assets = speech.build_speech(base / "work", seed=12, log=lambda _: None)
    root = base / "cache"
    hf_cache.claim(root)
    for repo_id, files, _ in repos:
        hf_cache.write_repo(root, repo_id, files)
    clips = base / "clips"
    clips.mkdir()
    for name, data in assets.items():
        (clips / name).write_bytes(data)
    return root, clips, {repo_id: facts for repo_id, _, facts in repos}


def run(root: Path, *args: str):
    return run_cli(MLXK, list(args), root, RUN_TIMEOUT)


def test_clips_are_short_distinct_16k_mono_wavs() -> None:
    seen = set()
    for clip in speech.CLIPS:
        data = speech.synthesize(clip)
        assert data == speech.synthesize(clip), f"{clip.filename} is not deterministic"
        with wave.open(io.BytesIO(data)) as w:
            shape = (w.getnchannels(), w.getsampwidth(), w.getframerate())
            seconds = w.getnframes() / w.getframerate()
        assert shape == (1, 2, 16000), f"{clip.filename}: (channels, bytes, rate) {shape}"
        assert 1.0 <= seconds <= 2.0, f"{clip.filename}: {seconds} s"
        seen.add(data)
    assert len(seen) == len(speech.CLIPS), "two clips have the same audio"
    texts = [c.transcript for c in speech.CLIPS if c.language == "de"]
    assert len(set(texts)) > 1, "two clips in one language with different texts: the audio decides"


def test_facts_name_every_clip(built) -> None:
    _, clips, facts = built
    for repo_id, f in facts.items():
        assert {c["file"] for c in f["clips"]} == {p.name for p in clips.iterdir()}, repo_id
        assert f["training_steps"] > 0 and f["seconds"] > 0, f
    assert all("translation" in c for c in facts[MULTILINGUAL]["clips"])
    assert not any("translation" in c for c in facts[ENGLISH_ONLY]["clips"])


def test_list_shows_audio_capabilities(built) -> None:
    root, _, facts = built
    result = run(root, "list", "--json")
    assert result.returncode == 0, result.describe()
    models = {m["name"]: m for m in json.loads(result.stdout)["data"]["models"]}
    assert sorted(models) == sorted(facts), result.describe()
    for repo_id, f in facts.items():
        got = models[repo_id]
        seen = {k: got.get(k) for k in ("framework", "health", "runtime_compatible", "model_type", "capabilities")}
        want = {"framework": "MLX", "health": "healthy", "runtime_compatible": True,
                "model_type": "audio", "capabilities": f["capabilities"]}
        assert seen == want, f"{repo_id}: expected {want}\n`mlxk list --json` says {seen}"


@pytest.mark.parametrize("clip", speech.CLIPS, ids=[c.name for c in speech.CLIPS])
def test_run_transcribes_golden(clip: speech.Clip, built) -> None:
    root, clips, _ = built
    result = run(root, "run", MULTILINGUAL, "--audio", str(clips / clip.filename), "--temperature", "0")
    expected = clip.transcript + "\n"
    assert result.returncode == 0 and result.stdout == expected, (
        f"expected stdout: {expected!r}\nactual stdout:   {result.stdout!r}\n{result.describe()}")


@pytest.mark.parametrize("clip", speech.CLIPS, ids=[c.name for c in speech.CLIPS])
def test_run_translates_golden(clip: speech.Clip, built) -> None:
    root, clips, _ = built
    result = run(root, "run", MULTILINGUAL, "--audio", str(clips / clip.filename), "--translate")
    expected = clip.translation + "\n"
    assert result.returncode == 0 and result.stdout == expected, (
        f"expected stdout: {expected!r}\nactual stdout:   {result.stdout!r}\n{result.describe()}")


def test_run_with_the_language_given(built) -> None:
    root, clips, _ = built
    clip = next(c for c in speech.CLIPS if c.language != "en")
    result = run(root, "run", MULTILINGUAL, "--audio", str(clips / clip.filename), "--language", clip.language)
    assert result.returncode == 0 and result.stdout == clip.transcript + "\n", result.describe()


def test_english_only_variant_transcribes(built) -> None:
    root, clips, _ = built
    clip = next(c for c in speech.CLIPS if c.language == "en")
    result = run(root, "run", ENGLISH_ONLY, "--audio", str(clips / clip.filename), "--temperature", "0")
    assert result.returncode == 0 and result.stdout == clip.transcript + "\n", result.describe()


def test_english_only_variant_refuses_translation_before_running(built) -> None:
    root, clips, _ = built
    clip = next(c for c in speech.CLIPS if c.language != "en")
    result = run(root, "run", ENGLISH_ONLY, "--audio", str(clips / clip.filename), "--translate")
    where = f"--translate on an English-only (.en) Whisper must be refused, before decoding:\n{result.describe()}"
    assert result.returncode == 1 and result.stdout == "", where
    assert "does not support speech translation" in result.stderr, where
    assert PROGRESS not in result.stderr and clip.transcript not in result.stderr, where


def test_builder_verification_catches_a_deaf_model(built, tmp_path: Path) -> None:
    """The builder's own check (greedy decode through mlx-audio) fails for the same model
    with its cross-attention values zeroed: it no longer hears the audio, so it cannot tell
    the two German clips (different golden texts) apart."""
    root, clips, _ = built
    import mlx.core as mx

    snapshot = next((root / "hub" / f"models--{MULTILINGUAL.replace('/', '--')}" / "snapshots").iterdir())
    deaf = tmp_path / "deaf"
    deaf.mkdir()
    (deaf / "config.json").write_bytes((snapshot / "config.json").read_bytes())
    weights = mx.load(str(snapshot / "model.safetensors"))
    for key in [k for k in weights if ".cross_attn.value." in k]:
        weights[key] = mx.zeros_like(weights[key])
    mx.save_safetensors(str(deaf / "model.safetensors"), weights)
    paths = [clips / c.filename for c in speech.CLIPS]
    with pytest.raises(RuntimeError, match="through mlx-audio: expected"):
        speech.verify(deaf, paths, speech.whisper_encoding())
