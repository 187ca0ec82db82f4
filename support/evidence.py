"""What a scenario did, kept for the reader: every HTTP exchange and CLI call, and for a failing
scenario the server log too (attached to Allure when it runs, and written under reports/evidence)."""

from __future__ import annotations

import re
from pathlib import Path

import allure

from .cli_runner import CliResult, cli_attachments
from .openai_http import Exchange
from .paths import REPORTS

EVIDENCE = REPORTS / "evidence"


def attachments(item: Exchange | CliResult) -> dict[str, str]:
    return cli_attachments(item) if isinstance(item, CliResult) else item.to_attachments()


def attach(item: Exchange | CliResult, number: int) -> None:
    """Attach the scenario's `number`-th exchange or command to the Allure report."""
    kind = "CLI" if isinstance(item, CliResult) else "HTTP"
    for name, text in attachments(item).items():
        allure.attach(text, name=f"{kind} #{number} {name}", attachment_type=allure.attachment_type.TEXT)


def attach_text(text: str, name: str) -> None:
    """Attach a text (a series, a table) to the scenario's Allure result."""
    allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)


def attach_images(images: dict[str, bytes], number: int) -> None:
    """Attach the images the scenario's `number`-th exchange or command asked about (PNG)."""
    for name, data in images.items():
        allure.attach(data, name=f"image #{number} {name}", attachment_type=allure.attachment_type.PNG)


def attach_audio(name: str, data: bytes, number: int) -> None:
    """Attach the sound file the scenario's `number`-th exchange or command uploaded (Allure plays WAV)."""
    allure.attach(data, name=f"audio #{number} {name}", attachment_type="audio/wav", extension="wav")


def keep_failure(scenario_name: str, items: list, server_log: Path | None) -> Path:
    """Write a failing scenario's evidence to reports/evidence/<scenario>/; returns the folder."""
    folder = EVIDENCE / re.sub(r"[^A-Za-z0-9._-]+", "_", scenario_name).strip("_")[:120]
    folder.mkdir(parents=True, exist_ok=True)
    for n, item in enumerate(items, 1):
        kind = "cli" if isinstance(item, CliResult) else "http"
        text = "\n\n".join(f"== {name}\n{body}" for name, body in attachments(item).items())
        (folder / f"{n:02d}-{kind}.txt").write_text(text, encoding="utf-8")
    if server_log is not None and server_log.is_file():
        log = server_log.read_text(encoding="utf-8", errors="replace")
        (folder / "server.log").write_text(log, encoding="utf-8")
        allure.attach(log, name="server log", attachment_type=allure.attachment_type.TEXT)
    return folder


def seconds_by_kind(items: list) -> dict[str, float]:
    """Time spent in the SUT (HTTP requests, CLI calls) and in the reference decoder, per kind: the
    length of the union of the items' time spans, so requests in flight together count once (an
    item without a start time counts in full)."""
    totals = {"request": 0.0, "cli": 0.0, "reference": 0.0}
    spans: dict[str, list[tuple[float, float]]] = {kind: [] for kind in totals}
    for item in items:
        kind = item.kind if isinstance(item, CliResult) else "request"
        if item.started_at is None:
            totals[kind] += item.seconds
        else:
            spans[kind].append((item.started_at, item.started_at + item.seconds))
    for kind, kind_spans in spans.items():
        covered_to = float("-inf")
        for start, end in sorted(kind_spans):
            if end > covered_to:
                totals[kind] += end - max(start, covered_to)
                covered_to = end
    return totals
