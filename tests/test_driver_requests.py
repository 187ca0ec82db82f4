"""The driver names a model in its requests the way the target says (targets.request_model)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from support.driver import Api, Sut
from support.targets import NotOffered


class Sent(Exception):
    """What the stand-in client was asked to send."""


class Client:
    def post_json(self, path, payload):
        raise Sent(path, payload)

    stream = post_json


@pytest.mark.parametrize("api", list(Api))
@pytest.mark.parametrize("stream", [False, True])
def test_questions_name_the_model_as_the_target_does(api, stream):
    target = SimpleNamespace(request_model=lambda model_id: f"served:{model_id}", lacks=frozenset())
    sut = Sut(SimpleNamespace(target=target), model="org/cached-model", client=Client())
    with pytest.raises(Sent) as sent:
        sut.ask("Say hello.", api, stream=stream)
    path, payload = sent.value.args
    assert path == api.value and payload["model"] == "served:org/cached-model"


def test_a_text_completion_on_a_target_without_them_is_refused_before_anything_is_sent():
    target = SimpleNamespace(name="server_only", request_model=str, lacks=frozenset({"text_completions"}))
    sut = Sut(SimpleNamespace(target=target), model="org/cached-model", client=Client())
    with pytest.raises(NotOffered, match="tag the scenario @needs.text_completions"):
        sut.ask("Say hello.", Api.TEXT)
    with pytest.raises(Sent):
        sut.ask("Say hello.", Api.CHAT)  # chat is offered
