"""support.embedding_checks on hand-made records and responses: each check passes on good input and
fails, naming the defect, on the bad input it exists for (no model, no SUT)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from support import embedding_checks as checks
from support.embedding_checks import Triple

RNG = np.random.default_rng(0)


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


VECTORS = unit(RNG.normal(size=(3, 8)))
META = {"model": "org/m", "dimensions": 8, "content_hash": "abc", "device": "cpu"}


def records(vectors=VECTORS, **meta) -> list[dict]:
    return [{"text": f"t{i}", "embedding": v.tolist(), "metadata": {**META, **meta}} for i, v in enumerate(vectors)]


def response(vectors=VECTORS, encoding="float", order=None) -> dict:
    def wire(v):
        return base64.b64encode(np.asarray(v, "<f4").tobytes()).decode() if encoding == "base64" else v.tolist()
    order = order or range(len(vectors))
    return {"object": "list", "model": "org/m", "usage": {"prompt_tokens": 3, "total_tokens": 3},
            "data": [{"object": "embedding", "index": i, "embedding": wire(vectors[i])} for i in order]}


def test_cli_records_jsonl_and_envelope():
    jsonl = "".join(json.dumps(r) + "\n" for r in records())
    assert len(checks.cli_records(jsonl, envelope=False)) == 3
    envelope = json.dumps({"status": "success", "command": "embed", "error": None, "data": {"records": records()}})
    assert checks.record_vectors(checks.cli_records(envelope, envelope=True)).shape == (3, 8)


@pytest.mark.parametrize("stdout, envelope, message", [
    ("", False, "printed no record"),
    ("not json\n", False, "line 1 is not a JSON record"),
    (json.dumps({"embedding": [0.1]}) + "\n", False, "'metadata' is a required property"),
    (json.dumps({"embedding": [0.1], "metadata": {**META, "device": "tpu"}}) + "\n", False, "'tpu' is not one of"),
    (json.dumps({"status": "error", "command": "embed", "error": {"type": "X", "message": "m"}, "data": None}),
     True, "'success' was expected"),
])
def test_cli_records_refuse_what_the_documentation_does_not_promise(stdout, envelope, message):
    with pytest.raises(AssertionError, match=message):
        checks.cli_records(stdout, envelope)


def test_base64_is_little_endian_float32():
    got = checks.response_vectors(response(encoding="base64"), 3, "here", dimensions=8)
    checks.check_close(VECTORS, got, 1e-6, "base64")
    as_float64 = base64.b64encode(VECTORS[0].astype("<f8").tobytes()).decode()
    with pytest.raises(AssertionError, match="decodes .little-endian float32. to 16 values, expected 8"):
        checks.decode_base64(as_float64, 8, "here")
    big_endian = base64.b64encode(VECTORS[0].astype(">f4").tobytes()).decode()
    with pytest.raises(AssertionError, match="vectors differ by up to"):
        checks.check_close(VECTORS[:1], checks.decode_base64(big_endian, 8, "here")[None, :], 1e-5, "byte order")
    with pytest.raises(AssertionError, match="not valid base64"):
        checks.decode_base64("***", 8, "here")


def test_response_shape_count_and_order():
    assert checks.response_vectors(response(), 3, "here").shape == (3, 8)
    with pytest.raises(AssertionError, match="expected 2 embeddings"):
        checks.response_vectors(response(), 2, "here")
    with pytest.raises(AssertionError, match=r"expected data\[i\].index == i, got indices \[1, 0, 2\]"):
        checks.response_vectors(response(order=[1, 0, 2]), 3, "here")
    with pytest.raises(AssertionError, match="'list' was expected"):
        checks.response_vectors({**response(), "object": "embedding"}, 3, "here")
    with pytest.raises(AssertionError, match="'usage' is a required property"):
        checks.response_vectors({k: v for k, v in response().items() if k != "usage"}, 3, "here")


def test_metadata():
    checks.check_metadata(records(), "org/m", "here", content_hash="abc", device="cpu")
    for bad, message in [({"model": "org/other"}, "metadata.model 'org/other'"),
                         ({"dimensions": 9}, "metadata.dimensions 9, but its embedding has 8"),
                         ({"content_hash": "def"}, "expected the snapshot revision 'abc'"),
                         ({"device": "gpu"}, "metadata.device 'gpu', but MLX computes on 'cpu'")]:
        with pytest.raises(AssertionError, match=message):
            checks.check_metadata(records(**bad), "org/m", "here", content_hash="abc", device="cpu")


def test_dimension_norm_closeness_difference():
    checks.check_unit_norm(VECTORS, "here")
    with pytest.raises(AssertionError, match=r"expected unit vectors.*\(0, 2\.0\)"):
        checks.check_unit_norm(VECTORS * 2, "here")
    with pytest.raises(AssertionError, match="expected 16-dimensional vectors, got shape"):
        checks.check_dimensions(VECTORS, 16, "here")
    shifted = VECTORS.copy()
    shifted[1, 3] += 0.01
    checks.check_close(VECTORS, shifted, 0.02, "here")
    with pytest.raises(AssertionError, match=r"worst at row 1 \('b'\) component 3"):
        checks.check_close(VECTORS, shifted, 1e-4, "here", rows=("a", "b", "c"))
    with pytest.raises(AssertionError, match="expected shape"):
        checks.check_close(VECTORS, VECTORS[:2], 1.0, "here")
    checks.check_differ(VECTORS, shifted, "here", at_least=0.005)
    with pytest.raises(AssertionError, match="expected different vectors"):
        checks.check_differ(VECTORS, VECTORS, "here")


def test_golden_margins():
    anchor = np.array([1.0, 0.0, 0.0])
    by_text = {"a": anchor, "p": unit(np.array([[1.0, 0.3, 0.0]]))[0], "u": np.array([0.0, 1.0, 0.0])}
    triple = Triple("a", "p", "u", 0.5)
    (_, margin), = checks.margins(by_text, [triple])
    assert margin == pytest.approx(checks.cosine(anchor, by_text["p"]))
    checks.check_margins(by_text, [triple], "here")
    with pytest.raises(AssertionError, match=r"'u' vs 'p' to 'a': margin -0\.958 < 0\.5"):
        checks.check_margins(by_text, [Triple("a", "u", "p", 0.5)], "here")


def test_throughput():
    assert checks.throughput(8, 0.5) == 16 and checks.throughput(8, 0.0) is None


def test_embedding_facts_come_from_the_manifest():
    from support.model_facts import embedding_facts_for
    manifest = {"models": [
        {"id": "org/chat", "kind": "text"},
        {"id": "org/e", "kind": "embeddings", "expect": "embedding", "dimensions": 8, "pooling": "cls",
         "query_prefix": "Q: ", "reference_tolerance": 1e-4, "reference": "how",
         "golden_triples": [{"anchor": "a", "paraphrase": "p", "unrelated": "u", "min_margin": 0.2}],
         "reference_vectors": [{"text": "a", "vector": [1.0, 0.0]}], "query_vectors": []}]}
    facts = embedding_facts_for("org/e", manifest)
    assert facts.dimensions == 8 and facts.triples == (Triple("a", "p", "u", 0.2,),)
    assert facts.documents == (("a", (1.0, 0.0)),) and facts.query_prefix == "Q: "
    assert embedding_facts_for("org/chat", manifest) is None and embedding_facts_for("org/e", None) is None


def test_bad_embedding_requests_are_known_by_name():
    from support.errors import HarnessError
    from support.request_catalogue import bad_embeddings_payload
    assert bad_embeddings_payload("an empty input list", "org/e")["input"] == []
    with pytest.raises(HarnessError, match="does not know: 'no such'"):
        bad_embeddings_payload("no such", "org/e")
