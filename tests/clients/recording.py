"""The clients' requests, recorded as fixtures (tests/fixtures/clients/<client>-<version>.<case>.turnN.json)
for the parsers' unit tests, and read back.

A recording keeps the shape of what the client sent: method, path, query, headers and body,
with keys removed, the run's directories and secret replaced by fixed placeholders, and
every long text cut to its start and its length. Re-record with `make record-clients`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fakes.base import RecordedRequest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clients"
KEY_HEADERS = {"authorization", "x-api-key", "api-key", "x-goog-api-key"}
RUN_HEADERS = {"host", "content-length"}  # differ from run to run, say nothing of the client
LONG_TEXT = 240
KEPT_START = 80


def _shorten(text: str) -> str:
    if len(text) <= LONG_TEXT:
        return text
    return f"{text[:KEPT_START]}…[{len(text)} chars]"


def _clean(value: Any, replacements: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
        return _shorten(value)
    if isinstance(value, list):
        return [_clean(item, replacements) for item in value]
    if isinstance(value, dict):
        return {key: _clean(item, replacements) for key, item in value.items()}
    return value


def recorded(request: RecordedRequest, replacements: dict[str, str]) -> dict[str, Any]:
    headers = {}
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in RUN_HEADERS:
            continue
        headers[lower] = "<removed>" if lower in KEY_HEADERS else _clean(value, replacements)
    return {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": headers,
        "body": _clean(request.json, replacements),
    }


def write(name: str, requests: list[RecordedRequest], replacements: dict[str, str]) -> list[Path]:
    """One file per request: ``<name>.turn1.json``, ``<name>.turn2.json``, ..."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for stale in FIXTURES.glob(f"{name}.turn*.json"):
        stale.unlink()
    paths = []
    for turn, request in enumerate(requests, start=1):
        path = FIXTURES / f"{name}.turn{turn}.json"
        text = json.dumps(recorded(request, replacements), indent=1, ensure_ascii=False)
        path.write_text(text + "\n")
        paths.append(path)
    return paths


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def recordings(prefix: str = "") -> list[Path]:
    return sorted(FIXTURES.glob(f"{prefix}*.turn*.json"))
