"""Embeddings as checks: `mlxk embed` records and `/v1/embeddings` responses read and judged.

Reading (`cli_records`, `response_vectors`) checks the documented shape first (schemas in
support/schemas.py) and raises AssertionError naming what is wrong, with the evidence; the
judging functions compare vectors: dimension, unit norm, closeness to a reference within a
tolerance, golden similarity order. Nothing here talks to the SUT.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from .expect import that
from .schemas import CLI_EMBED_SUCCESS, EMBED_RECORD, EMBEDDINGS, validate

NORM_TOLERANCE = 1e-4  # |norm - 1| of a normalised float32 vector
# CLI and server run the same float32 forward pass; JSON's float text and base64's float32 bytes
# may round differently in the last place, nothing more.
SAME_VECTORS = 1e-5


@dataclass(frozen=True)
class Triple:
    """A golden fact: `paraphrase` is closer to `anchor` than `unrelated` is, by `min_margin`."""

    anchor: str
    paraphrase: str
    unrelated: str
    min_margin: float


# --- reading -----------------------------------------------------------------------------------

def cli_records(stdout: str, envelope: bool, evidence: str = "") -> list[dict]:
    """The records `mlxk embed` printed: one JSON object per line, or (``envelope``, with --json)
    one document whose data.records holds them; each checked against the record schema."""
    if envelope:
        try:
            doc = json.loads(stdout)
        except ValueError as e:
            raise AssertionError(f"mlxk embed --json: stdout is not one JSON document ({e}): {stdout[:300]!r}"
                                 + (f"\n{evidence}" if evidence else "")) from None
        validate(doc, CLI_EMBED_SUCCESS, "mlxk embed --json", evidence)
        return doc["data"]["records"]
    lines = stdout.splitlines()
    that(bool(lines), "mlxk embed printed no record on stdout", evidence)
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError as e:
            raise AssertionError(f"mlxk embed: stdout line {number} is not a JSON record ({e}): {line[:200]!r}"
                                 + (f"\n{evidence}" if evidence else "")) from None
        validate(record, EMBED_RECORD, f"mlxk embed: record {number}", evidence)
        records.append(record)
    return records


def decode_base64(text: str, dimensions: int | None, what: str, evidence: str = "") -> np.ndarray:
    """A base64 embedding as OpenAI's clients read it: little-endian float32 (`<f4`)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise AssertionError(f"{what}: the embedding is not valid base64 ({e})\n{evidence}") from None
    that(len(raw) % 4 == 0, f"{what}: {len(raw)} bytes of base64 are no whole number of float32 values", evidence)
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float64)
    if dimensions is not None:
        that(len(vector) == dimensions, f"{what}: base64 decodes (little-endian float32) to {len(vector)} "
                                        f"values, expected {dimensions} (a different dtype or byte order?)", evidence)
    return vector


def response_vectors(doc: object, n_inputs: int, what: str, evidence: str = "",
                     dimensions: int | None = None) -> np.ndarray:
    """The vectors of an OpenAI embeddings response, one row per input in input order: the shape
    checked (object list, data[i].object "embedding", index i, model, usage), base64 decoded."""
    validate(doc, EMBEDDINGS, what, evidence)
    data = doc["data"]  # type: ignore[index]
    that(len(data) == n_inputs, f"{what}: expected {n_inputs} embeddings (one per input), got {len(data)}", evidence)
    indices = [item["index"] for item in data]
    that(indices == list(range(n_inputs)), f"{what}: expected data[i].index == i, got indices {indices}", evidence)
    rows = [decode_base64(e, dimensions, f"{what}: data[{i}]", evidence) if isinstance(e, str)
            else np.asarray(e, dtype=np.float64) for i, e in enumerate(item["embedding"] for item in data)]
    lengths = sorted({len(r) for r in rows})
    that(len(lengths) == 1, f"{what}: embeddings of different lengths {lengths}", evidence)
    return np.vstack(rows)


def record_vectors(records: Sequence[dict]) -> np.ndarray:
    return np.vstack([np.asarray(r["embedding"], dtype=np.float64) for r in records])


# --- judging -----------------------------------------------------------------------------------

def check_metadata(records: Sequence[dict], model: str, what: str, evidence: str = "",
                   content_hash: str | None = None, device: str | None = None) -> None:
    """Each record names the model, its own vector's length as dimensions, one content hash (the
    given one when known) and, when given, the device the computation ran on."""
    for i, record in enumerate(records):
        meta, n = record["metadata"], len(record["embedding"])
        that(meta["model"] == model, f"{what}: record {i} metadata.model {meta['model']!r}, expected {model!r}",
             evidence)
        that(meta["dimensions"] == n, f"{what}: record {i} metadata.dimensions {meta['dimensions']}, but its "
                                      f"embedding has {n} values", evidence)
        if content_hash is not None:
            that(meta["content_hash"] == content_hash, f"{what}: record {i} metadata.content_hash "
                 f"{meta['content_hash']!r}, expected the snapshot revision {content_hash!r}", evidence)
        if device is not None:
            that(meta["device"] == device, f"{what}: record {i} metadata.device {meta['device']!r}, but MLX "
                 f"computes on {device!r} here (mlx.core.default_device())", evidence)
    hashes = sorted({r["metadata"]["content_hash"] for r in records})
    that(len(hashes) == 1, f"{what}: one model, several content hashes {hashes}", evidence)


def check_dimensions(vectors: np.ndarray, dimensions: int, what: str, evidence: str = "") -> None:
    that(vectors.ndim == 2 and vectors.shape[1] == dimensions,
         f"{what}: expected {dimensions}-dimensional vectors, got shape {vectors.shape}", evidence)


def check_unit_norm(vectors: np.ndarray, what: str, evidence: str = "", tolerance: float = NORM_TOLERANCE) -> None:
    norms = np.linalg.norm(vectors, axis=1)
    off = [(i, round(float(n), 6)) for i, n in enumerate(norms) if abs(n - 1) > tolerance]
    that(not off, f"{what}: expected unit vectors (|norm - 1| <= {tolerance:g}); (row, norm) off: {off[:5]}",
         evidence)


def max_difference(expected: np.ndarray, actual: np.ndarray) -> tuple[float, tuple[int, int]]:
    """The largest |component| difference and where (row, column); shapes must agree."""
    diff = np.abs(np.asarray(expected, dtype=np.float64) - np.asarray(actual, dtype=np.float64))
    at = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return float(diff[at]), (int(at[0]), int(at[1]))


def check_close(expected: np.ndarray, actual: np.ndarray, tolerance: float, what: str, evidence: str = "",
                rows: Sequence[str] = ()) -> None:
    """Same shape, and every component within ``tolerance``; the message names the worst row."""
    expected, actual = np.atleast_2d(expected), np.atleast_2d(actual)
    that(expected.shape == actual.shape, f"{what}: expected shape {expected.shape}, got {actual.shape}", evidence)
    diff, (row, col) = max_difference(expected, actual)
    name = f" ({rows[row]!r})" if row < len(rows) else ""
    that(diff <= tolerance, f"{what}: vectors differ by up to {diff:.3g} (tolerance {tolerance:g}), worst at "
                            f"row {row}{name} component {col}: expected {expected[row, col]:.6g}, "
                            f"got {actual[row, col]:.6g}", evidence)


def check_differ(a: np.ndarray, b: np.ndarray, what: str, evidence: str = "", at_least: float = 1e-3) -> None:
    diff, _ = max_difference(a, b)
    that(diff >= at_least, f"{what}: expected different vectors, they differ by at most {diff:.3g}", evidence)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def margins(by_text: Mapping[str, np.ndarray], triples: Iterable[Triple]) -> list[tuple[Triple, float]]:
    """cos(anchor, paraphrase) - cos(anchor, unrelated), per triple."""
    return [(t, cosine(by_text[t.anchor], by_text[t.paraphrase]) - cosine(by_text[t.anchor], by_text[t.unrelated]))
            for t in triples]


def check_margins(by_text: Mapping[str, np.ndarray], triples: Iterable[Triple], what: str, evidence: str = "") -> None:
    """Every paraphrase closer to its anchor than the unrelated sentence, by the triple's margin."""
    short = [f"{t.paraphrase!r} vs {t.unrelated!r} to {t.anchor!r}: margin {m:.3f} < {t.min_margin}"
             for t, m in margins(by_text, triples) if m < t.min_margin]
    that(not short, f"{what}: the paraphrase is not closer than the unrelated sentence by the golden margin: "
                    + "; ".join(short), evidence)


def throughput(n_inputs: int, seconds: float) -> float | None:
    """Inputs per second (None without time)."""
    return n_inputs / seconds if seconds > 0 else None
