"""The requests the real clients send (recorded in tests/fixtures/clients by `make record-clients`),
read the way the gateway reads them: the endpoint its path and headers name, then that API's
parser (pipeline/endpoint.py, pipeline/parse.py). Turn 1 is the task with the client's tools;
turn 2 adds the tool call the provider asked for and the client's result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from extproc.formats import FORMATS
from extproc.formats.canonical import ChatRequest, TextPart
from extproc.pipeline.endpoint import classify
from tests.clients.recording import load, recordings

SECRET = "pelican-0000"  # what the recorded tool read (recording.py replaces each run's own)
TOOLS = {"claude-code": "Read", "codex": "exec_command", "openai-agents": "read_note"}

CASES = [pytest.param(path, id=path.name.removesuffix(".json")) for path in recordings()]


def _tool_name(path: Path) -> str:
    return next(tool for client, tool in TOOLS.items() if path.name.startswith(f"{client}-"))


def parse_as_the_gateway_does(recorded: dict[str, Any]) -> ChatRequest:
    query = "&".join(f"{key}={value}" for key, value in recorded["query"].items())
    path = recorded["path"] + (f"?{query}" if query else "")
    endpoint = classify(recorded["method"], path, recorded["headers"])
    assert endpoint is not None, f"the gateway does not serve {recorded['method']} {recorded['path']}"
    return FORMATS[endpoint.format].parse_request(json.dumps(recorded["body"]).encode(), endpoint)


def _text(request: ChatRequest) -> str:
    return " ".join(part.text for m in request.messages for part in m.content if isinstance(part, TextPart))


def test_every_client_has_both_turns_recorded() -> None:
    names = {path.name for path in recordings()}
    for client in TOOLS:
        assert any(name.startswith(f"{client}-") and ".turn1." in name for name in names), client
        assert any(name.startswith(f"{client}-") and ".turn2." in name for name in names), client


@pytest.mark.parametrize("path", CASES)
def test_the_gateway_reads_what_the_client_sent(path: Path) -> None:
    recorded = load(path)
    request = parse_as_the_gateway_does(recorded)
    assert request.model == recorded["body"]["model"]
    assert request.stream == bool(recorded["body"].get("stream"))
    assert _tool_name(path) in [tool.name for tool in request.tools]
    assert "note.txt" in _text(request)


@pytest.mark.parametrize("path", [case for case in CASES if ".turn2." in case.values[0].name])
def test_the_tool_result_stays_bound_to_its_call(path: Path) -> None:
    request = parse_as_the_gateway_does(load(path))
    calls = [call for message in request.messages for call in message.tool_calls]
    assert [call.name for call in calls] == [_tool_name(path)]
    results = [message for message in request.messages if message.role == "tool"]
    assert len(results) == 1
    assert results[0].tool_call_id == calls[0].id
    assert SECRET in " ".join(part.text for part in results[0].content if isinstance(part, TextPart))
