"""Steps for speech models (transcription and translation, server and command line), over `context.sut`."""

from behave import given, then, when

from support import expect, step_types  # noqa: F401  (step_types registers the parameter types)
from support import speech_checks as sc
from support.cli_runner import CliResult
from support.errors import HarnessError

GERMAN = "de"


def _answers(context):
    found = context.sut.speech_answers
    if not found:
        raise HarnessError("the scenario sent no recording before checking what came back")
    return found


def _german(sut):
    clip = next((c for c in sut.speech_clips() if c.language == GERMAN), None)
    if clip is None:
        raise HarnessError(f"{sut.model} has no German golden clip")
    return clip


@given("{server:AnySpeechModel}")
def step_any_speech_model(context, server):
    model = context.sut.any_speech_model()
    if model is None:
        context.scenario.skip("the portfolio (as selected) has no speech model within the RAM budget")
        return
    context.sut.use(model, server)


@when("I upload each of the model's clips for {task:SpeechTask}")
def step_upload_each(context, task):
    for clip in context.sut.speech_clips():
        context.sut.upload(clip, task)


@when("I upload the model's first clip for transcription as json, as text and as verbose_json")
def step_upload_formats(context):
    for fmt in ("json", "text", "verbose_json"):
        context.sut.upload(context.sut.speech_clips()[0], response_format=fmt)


@when("I upload the model's German clip for transcription as verbose_json")
def step_upload_verbose(context):
    context.sut.upload(_german(context.sut), response_format="verbose_json")


@when("I upload the model's first clip for transcription as srt and as vtt")
def step_upload_subtitles(context):
    for fmt in sc.SUBTITLES:
        context.sut.upload(context.sut.speech_clips()[0], response_format=fmt)


@when("I upload the model's German clips for transcription, telling it they are German")
def step_upload_german(context):
    for clip in context.sut.speech_clips():
        if clip.language == GERMAN:
            context.sut.upload(clip, language=GERMAN)


@when("I upload the model's first clip resampled to {rate:d} kHz for transcription")
def step_upload_resampled(context, rate):
    clip = context.sut.speech_clips()[0]
    context.sut.upload(clip, data=sc.resampled(context.sut.clip_data(clip), rate * 1000),
                       filename=clip.file.replace(".wav", f"-{rate}k.wav"))


@when("I ask the speech model for a chat answer, then upload its first clip")
def step_chat_with_speech_model(context):
    context.sut.chat_with_speech_model(context.sut.speech_clips()[0])


@when("I upload the model's first clip for transcription by a chat model of the portfolio")
def step_upload_chat_model(context):
    context.sut.upload_for_chat_model(context.sut.speech_clips()[0])


@when("I send each bad upload, each followed by a good one:")
def step_bad_uploads(context):
    from support.request_catalogue import expected_status

    context.sut.send_bad_uploads((row["bad upload"], expected_status(row["status"])) for row in context.table)


@when("I translate the model's German clip on the command line, telling it the clip is German")
def step_cli_translate(context):
    context.sut.transcribe_cli(_german(context.sut), task=sc.TRANSLATE, language=GERMAN)


@when("I transcribe the model's first clip on the command line with --json")
def step_cli_json(context):
    context.sut.transcribe_cli(context.sut.speech_clips()[0], "--json")


@when("I transcribe each of the model's clips with mlx-audio directly and on the server, and the first on the "
      "command line")
def step_parity(context):
    sut = context.sut
    clips = sut.speech_clips()
    sut.decode_speech_reference([(c, sc.TRANSCRIBE) for c in clips])
    for clip in clips:
        sut.upload(clip)
    sut.transcribe_cli(clips[0])


@when("the official OpenAI client uploads the model's first clip for transcription")
def step_openai_client(context):
    context.sut.transcribe_openai_client(context.sut.speech_clips()[0])


@when("I transcribe a sound file that does not exist on the command line, as plain text and with --json")
def step_cli_missing(context):
    context.sut.transcribe_cli_missing()
    context.sut.transcribe_cli_missing("--json")


@when("I transcribe a file that is not a recording on the command line with --json")
def step_cli_not_audio(context):
    context.sut.transcribe_cli_not_audio("--json")


@then("each transcription is the golden transcript of its clip")
def step_golden(context):
    for a in _answers(context):
        sc.check_answer(a, sc.TRANSCRIBE)


@then("each transcription has the shape of its format and is the golden transcript of its clip")
def step_formats(context):
    for a in _answers(context):
        sc.check_answer(a, sc.TRANSCRIBE)


@then("the command printed one JSON document that matches the run schema, with the transcript as its response")
def step_cli_json_document(context):
    sc.check_answer(_answers(context)[-1], sc.TRANSCRIBE)


@then("the verbose transcription names the clip's language and the length of its recording")
def step_verbose(context):
    a = _answers(context)[-1]
    sc.check_verbose(a.evidence, a.clip, f"{a.way} transcription")


@then("each answer is subtitles of the golden transcript, or a clean refusal of the format")
def step_subtitles(context):
    for a in _answers(context):
        sc.check_subtitles(a.evidence, a.response_format, a.clip, f"{a.way} transcription of {a.clip.describe()}")


@then("each translation is the golden English of its clip, or a clean refusal when the model cannot translate")
def step_translations(context):
    translates = context.sut.can_translate()
    for a in _answers(context):
        if translates:
            sc.check_answer(a, sc.TRANSLATE)
        else:
            sc.check_translation_refused(a.evidence, f"translation of {a.clip.describe()} by a model without "
                                                     f"{sc.TRANSLATE_CAPABILITY}")


@then("the command gives the golden English of the clip, or refuses with exit code 1 before decoding when the "
      "model cannot translate")
def step_cli_translation(context):
    a = _answers(context)[-1]
    if context.sut.can_translate():
        sc.check_answer(a, sc.TRANSLATE)
    else:
        sc.check_cli_translation_refused(a.evidence)


@then("the server's transcription of each clip is mlx-audio's")
def step_server_is_reference(context):
    ref = context.sut.speech_reference
    server = [a for a in _answers(context) if not isinstance(a.evidence, CliResult)]
    expect.all_same([(r.text, sc.answer_text(a), f"server vs mlx-audio transcription of {a.clip.describe()}",
                      ref.describe() + "\n" + a.describe()) for r, a in zip(ref.answers, server, strict=True)])


@then("the command line's transcription of the first clip is the server's")
def step_cli_is_server(context):
    answers = _answers(context)
    cli = next(a for a in answers if isinstance(a.evidence, CliResult))
    server = next(a for a in answers if not isinstance(a.evidence, CliResult) and a.clip == cli.clip)
    expect.same_text(sc.answer_text(server), sc.answer_text(cli), f"command line vs server transcription of "
                     f"{cli.clip.describe()}", server.describe() + "\n" + cli.describe())


@then("the upload got a clean client error and a good upload after it succeeded")
def step_chat_model_refused(context):
    bad, good = _answers(context)[-2:]
    with expect.labelled(f"transcription by a chat model ({bad.evidence.request_json.get('model')})"):
        sc.check_error(bad.evidence, range(400, 500))
    sc.check_answer(good, sc.TRANSCRIBE)


@then("the chat request got a clean client error within {limit:g} seconds and the upload after it succeeded")
def step_chat_refused_promptly(context, limit):
    refused = context.sut.refused_chat
    with expect.labelled(f"a chat request naming the speech model {context.sut.model}"):
        sc.check_error(refused, range(400, 500))
        expect.that(refused.seconds <= limit, f"the refusal took {refused.seconds:.1f} s (expected within {limit:g} s: "
                                              "the model's kind is known without loading anything)", refused.describe())
    sc.check_answer(_answers(context)[-1], sc.TRANSCRIBE)


@then("both commands fail with exit code {code:d} and name the missing sound file")
def step_missing_named(context, code):
    for r in [e for e in context.sut.evidence if isinstance(e, CliResult)][-2:]:
        sc.check_cli_failure_names(r, code, sc.MISSING_CLIP)
