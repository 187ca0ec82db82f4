"""The speech support code without a model: clips, uploads, the checks of every answer format, the
reference's command line and parsing, the real-time factor, the builder's manifest entries."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from support import known_issues, metrics, speech_checks as sc, speech_reference
from support.cli_runner import CliResult
from support.driver import SpeechAnswer
from support.errors import HarnessError
from support.openai_http import TRANSCRIPTIONS, Exchange
from support.paths import REGISTRY
from support.portfolio_matrix import areas_of

CLIP = sc.SpeechClip("eins-de.wav", "de", 1.5, "eins zwei drei", "one two three")
MANIFEST = {"models": [{"id": "o/whisper", "kind": "audio", "clips": [
    {"file": "eins-de.wav", "language": "de", "seconds": 1.5, "transcript": "eins zwei drei",
     "translation": "one two three", "path": "assets/eins-de.wav"},
    {"file": "hello-en.wav", "language": "en", "seconds": 1.2, "transcript": "hello world"}]}]}


def answer(status=200, body="", content_type="application/json", request=None) -> Exchange:
    ex = Exchange("POST", "http://h" + TRANSCRIPTIONS, request_json=request, status=status,
                  headers={"content-type": content_type}, body_text=body)
    try:
        ex.json = json.loads(body)
    except ValueError:
        pass
    return ex


def messages(issue_id: str) -> list[str]:
    return next(e for e in known_issues.load(REGISTRY).entries if e.id == issue_id).messages


def failure(check, *args) -> str:
    with pytest.raises(AssertionError) as e:
        check(*args)
    return str(e.value)


def test_clips_of_reads_the_manifest_and_knows_which_translate():
    eins, hello = sc.clips_of(MANIFEST, "o/whisper")
    assert eins == CLIP and eins.golden(sc.TRANSLATE) == "one two three"
    assert hello.translation is None and hello.golden(sc.TRANSCRIBE) == "hello world"
    assert sc.clips_of(MANIFEST, "o/other") == () == sc.clips_of(None, "o/whisper")


def test_neutral_clip_is_a_real_wav_of_its_length():
    clip, data = sc.neutral_clip()
    assert clip.transcript == "" and abs(sc.wav_seconds(data) - clip.seconds) < 0.01


def test_wav_seconds_and_resampling_keep_the_length():
    _, data = sc.neutral_clip()
    low = sc.resampled(data, 8000)
    assert abs(sc.wav_seconds(low) - sc.wav_seconds(data)) < 0.01 and len(low) < len(data)
    assert sc.audio_note(low) == {"audio_seconds": round(sc.wav_seconds(low), 3)}
    assert sc.audio_note(sc.NOT_AUDIO) == {} and sc.audio_note(b"") == {}
    with pytest.raises(HarnessError):
        sc.wav_seconds(sc.NOT_AUDIO)


def test_bad_uploads_are_named_by_the_spec():
    assert sc.bad_upload("an empty file", b"x") == {"data": b""}
    assert sc.bad_upload("a language no model knows", b"x") == {"language": sc.UNKNOWN_LANGUAGE}
    with pytest.raises(HarnessError, match="bad upload the suite does not know"):
        sc.bad_upload("a typo", b"x")


def test_upload_fields_leave_out_what_is_not_given():
    assert sc.upload_fields("m") == {"model": "m"}
    assert sc.upload_fields("m", "text", "de") == {"model": "m", "response_format": "text", "language": "de"}


def test_response_text_by_format():
    assert sc.response_text(answer(body='{"text": "hi"}'), None, "w") == "hi"
    assert sc.response_text(answer(body="hi", content_type="text/plain; charset=utf-8"), "text", "w") == "hi"
    assert "expected content-type text/plain" in failure(sc.response_text, answer(body='{"text": "hi"}'), "text", "w")
    assert "duration" in failure(sc.response_text, answer(body='{"text": "hi"}'), "verbose_json", "w")
    assert "HTTP 200, got 500" in failure(sc.response_text, answer(500, '{"error": {}}'), None, "w")


def test_check_verbose_wants_the_heard_language_and_the_audio_length():
    good = answer(body=json.dumps({"task": "transcribe", "language": "german", "duration": 1.52, "text": "x"}))
    sc.check_verbose(good, CLIP, "w")
    seen = answer(body=json.dumps({"task": "transcribe", "language": "auto", "duration": 0.31, "text": "x"}))
    message = failure(sc.check_verbose, seen, CLIP, "w")
    assert "language 'auto'" in message and "duration 0.31 s" in message
    assert any(fnmatchcase(message, g) for g in messages("KI-401"))


def test_check_subtitles_takes_subtitles_or_a_refusal_never_json():
    srt = "1\n00:00:00,000 --> 00:00:01,500\neins zwei drei\n\n"
    vtt = "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\neins zwei drei\n\n"
    sc.check_subtitles(answer(body=srt, content_type="text/plain"), "srt", CLIP, "w")
    sc.check_subtitles(answer(body=vtt, content_type="text/vtt"), "vtt", CLIP, "w")
    sc.check_subtitles(answer(400, '{"error": {"message": "unsupported response_format"}}'), "srt", CLIP, "w")
    wrong = failure(sc.check_subtitles, answer(body=srt.replace("eins", "zwei")), "srt", CLIP, "w")
    assert "texts differ" in wrong or "eins zwei drei" in wrong
    message = failure(sc.check_subtitles, answer(body='{"text":"eins zwei drei"}'), "srt", CLIP, "w")
    assert any(fnmatchcase(message, g) for g in messages("KI-402"))


def test_translation_refusal_must_be_a_4xx_that_says_so():
    sc.check_translation_refused(answer(422, '{"error": {"message": "does not support speech translation"}}'), "w")
    assert "does not say" in failure(sc.check_translation_refused, answer(422, '{"error": {"message": "no"}}'), "w")
    assert "server error HTTP 500" in failure(sc.check_translation_refused, answer(500, '{"error": {}}'), "w")


def cli(code: int, stdout: str = "", stderr: str = "", *flags: str) -> CliResult:
    return CliResult(("mlxk", "run", "m", "--audio", "x.wav", *flags), code, stdout, stderr, 1.0, 60.0)


def test_answer_text_of_the_command_line_plain_and_json():
    assert sc.answer_text(SpeechAnswer(CLIP, sc.TRANSCRIBE, None, None, cli(0, "eins zwei drei\n"))) == "eins zwei drei"
    doc = {"status": "success", "command": "run", "error": None,
           "data": {"model": "m", "prompt": "", "response": "eins zwei drei"}}
    assert sc.answer_text(SpeechAnswer(CLIP, sc.TRANSCRIBE, "--json", None, cli(0, json.dumps(doc), "", "--json"))) \
        == "eins zwei drei"
    empty = failure(sc.answer_text, SpeechAnswer(CLIP, sc.TRANSCRIBE, "--json", None, cli(0, "", "", "--json")))
    assert any(fnmatchcase(empty, g) for g in messages("KI-403"))
    assert "exit code 0, got 1" in failure(sc.answer_text, SpeechAnswer(CLIP, sc.TRANSCRIBE, None, None, cli(1)))


def test_check_answer_wants_the_golden_or_some_text():
    sc.check_answer(SpeechAnswer(CLIP, sc.TRANSLATE, None, None, answer(body='{"text": "one two three"}')), sc.TRANSLATE)
    failure(sc.check_answer, SpeechAnswer(CLIP, sc.TRANSLATE, None, None, answer(body='{"text": "eins zwei drei"}')),
            sc.TRANSLATE)
    unknown = sc.SpeechClip("x.wav", "en", 1.0, "")
    sc.check_answer(SpeechAnswer(unknown, sc.TRANSCRIBE, None, None, answer(body='{"text": "anything"}')), sc.TRANSCRIBE)
    assert "expected some text" in failure(sc.check_answer, SpeechAnswer(
        unknown, sc.TRANSCRIBE, None, None, answer(body='{"text": " "}')), sc.TRANSCRIBE)


def test_cli_translation_refusal_comes_before_decoding():
    said = "Error: Model 'm' does not support speech translation (audio-translate-en)."
    sc.check_cli_translation_refused(cli(1, "", said))
    assert "exit code 1, got 0" in failure(sc.check_cli_translation_refused, cli(0, "", said))
    late = failure(sc.check_cli_translation_refused, cli(1, "", "100%| 150/150 [00:00, 165frames/s]\n" + said))
    assert "only after the model decoded" in late


def test_cli_failure_names_the_file_without_a_placeholder():
    sc.check_cli_failure_names(cli(1, "", f"run: Error: Audio file not found: /x/{sc.MISSING_CLIP}"), 1, sc.MISSING_CLIP)
    message = failure(sc.check_cli_failure_names, cli(1, "", f"None: Error: Audio file not found: /x/{sc.MISSING_CLIP}"),
                      1, sc.MISSING_CLIP)
    assert any(fnmatchcase(message, g) for g in messages("KI-406"))


def test_real_time_factor_of_successful_uploads_only():
    upload = {"model": "m", "file": {"filename": "a.wav", "bytes": 9, "audio_seconds": 1.5}}
    ok = answer(body='{"text": "x"}', request=upload)
    ok.seconds = 0.5
    assert metrics.real_time_factor(ok) == pytest.approx(3.0)
    failed = answer(500, "{}", request=upload)
    failed.seconds = 0.5
    no_length = answer(body='{"text": "x"}', request={"model": "m", "file": {"filename": "a.wav", "bytes": 9}})
    no_length.seconds = 0.5
    assert metrics.real_time_factor(failed) is None and metrics.real_time_factor(no_length) is None
    collector = metrics.Collector(["m"])
    collector.add_evidence([ok, failed])
    assert collector.record("m")["speech_rtf"] == {"unit": "audio s/s", "n": 1, "median": 3.0, "min": 3.0, "max": 3.0}


def test_the_speech_tag_is_a_matrix_column():
    assert areas_of(["@speech", "@server"]) == {"speech", "server"}


def test_reference_command_and_parse_round_trip():
    asks = [speech_reference.Ask("/abs/eins-de.wav", "translate", "de")]
    argv = speech_reference.command(Path("/snap"), asks)
    assert argv[1:5] == ("-m", "support.speech_reference", "--model-path", "/snap")
    assert json.loads(argv[-1]) == {"audio": "/abs/eins-de.wav", "task": "translate", "language": "de"}
    doc = {"answers": [{"audio": "/abs/eins-de.wav", "task": "translate", "language_given": "de",
                        "text": "one two three", "language": "de"}]}
    run = speech_reference.parse(CliResult(argv, 0, json.dumps(doc), "", 1.0, 60.0, kind="reference"))
    assert run.answers[0].ask == asks[0] and run.answers[0].text == "one two three"
    assert "one two three" in run.describe()
    with pytest.raises(HarnessError, match="speech reference failed"):
        speech_reference.parse(CliResult(argv, 2, "", "boom", 1.0, 60.0, kind="reference"))


def test_reference_refuses_missing_clips_without_loading(tmp_path, capsys):
    code = speech_reference.main(["--model-path", str(tmp_path), "--clip", json.dumps({"audio": "/no.wav",
                                                                                         "task": "transcribe"})])
    assert code == 2 and "missing clips ['/no.wav']" in capsys.readouterr().err


def test_the_builder_puts_speech_clips_in_the_assets_with_their_paths(tmp_path, monkeypatch):
    from support.demo_portfolio import builder, speech

    facts = {"kind": "speech", "clips": [{"file": "hello-en.wav", "language": "en", "seconds": 1.2,
                                          "transcript": "hello world"}]}
    monkeypatch.setattr(speech, "build_speech", lambda work, seed, log: ([("o/w", {"config.json": b"{}"}, facts)],
                                                                         {"hello-en.wav": b"RIFF"}))
    [(repo_id, files, entry)] = builder._build_speech(tmp_path / "work", tmp_path / "assets", print)
    assert (repo_id, files) == ("o/w", {"config.json": b"{}"}) and "kind" not in entry
    assert entry["clips"][0]["path"] == "assets/hello-en.wav" and (tmp_path / "assets" / "hello-en.wav").read_bytes() == b"RIFF"
    assert [kind for kind, _ in builder.capability_builders()] == ["embeddings", "vision", "audio"]
