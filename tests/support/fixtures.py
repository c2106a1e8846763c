"""Access to the recorded provider fixtures in ``shared/fixtures``.

The fixtures are real provider traffic (see INDEX.md next to them). They are
loaded in place and never copied into the project; every accessor skips the
calling test when the fixture directory is missing.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES_DIR: Path = (
    Path(os.environ["GATEWAY_FIXTURES"])
    if os.environ.get("GATEWAY_FIXTURES")
    else REPO_ROOT.parent / "shared" / "fixtures"
)
SKIP_MESSAGE = f"fixtures not found at {FIXTURES_DIR} (set GATEWAY_FIXTURES)"

# Real content types per provider and body kind (INDEX.md, "Notes"), used when
# index.json does not record the content type of a file.
_CONTENT_TYPES: dict[tuple[str, str], str] = {
    ("openai", "json"): "application/json",
    ("openai", "sse"): "text/event-stream; charset=utf-8",
    ("anthropic", "json"): "application/json",
    ("anthropic", "sse"): "text/event-stream; charset=utf-8",
    ("gemini", "json"): "application/json; charset=UTF-8",
    ("gemini", "sse"): "text/event-stream",
}


def fixtures_available() -> bool:
    return (FIXTURES_DIR / "index.json").is_file()


def require_fixtures() -> None:
    """Skip the calling test when the fixture directory is missing."""
    if not fixtures_available():
        pytest.skip(SKIP_MESSAGE)


def fixture_path(rel: str) -> Path:
    path = FIXTURES_DIR / rel
    if not path.is_file():
        pytest.skip(SKIP_MESSAGE)
    return path


def fixture_bytes(rel: str) -> bytes:
    return fixture_path(rel).read_bytes()


def fixture_json(rel: str) -> Any:
    return orjson.loads(fixture_bytes(rel))


@cache
def _index() -> dict[str, dict[str, Any]]:
    if not fixtures_available():
        return {}
    entries = orjson.loads((FIXTURES_DIR / "index.json").read_bytes())
    return {entry["file"]: entry for entry in entries}


def fixture_entry(rel: str) -> dict[str, Any]:
    """The index.json record of a fixture ({} when it is not indexed)."""
    return _index().get(rel, {})


def response_fixtures(provider: str) -> list[str]:
    """Relative paths of every recorded response body of one provider."""
    return sorted(
        rel for rel, entry in _index().items() if entry.get("kind") == "response" and rel.startswith(f"{provider}/")
    )


def fixture_status(rel: str) -> int:
    """HTTP status of a response fixture.

    Files copied from FirebaseExtended carry no status; for those the error
    body's ``error.code`` is the status (INDEX.md notes), else 200.
    """
    status = fixture_entry(rel).get("status")
    if isinstance(status, int):
        return status
    body = fixture_bytes(rel)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 200  # SSE bodies: errors inside a stream still arrive with 200
    error = parsed.get("error") if isinstance(parsed, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
        return code
    return 200


def fixture_content_type(rel: str) -> str:
    content_type = fixture_entry(rel).get("content_type")
    if content_type:
        return content_type
    provider = rel.split("/", 1)[0]
    kind = "sse" if rel.endswith(".sse") else "json"
    return _CONTENT_TYPES.get((provider, kind), "application/json")
