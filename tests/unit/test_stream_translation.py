"""Stream translation end to end (provider decoder -> client encoder): cutting a recorded
provider stream at any byte boundaries gives the client the same events."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.formats import FORMATS
from extproc.formats.canonical import (
    ChatRequest,
    Finish,
    Message,
    StreamFailure,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    UsageUpdate,
)
from extproc.formats.endpoint import Endpoint
from tests.support.fixtures import SKIP_MESSAGE, fixture_bytes, response_fixtures

STREAMS = [f for p in FORMATS for f in response_fixtures(p) if f.endswith(".sse")] or [
    pytest.param(None, marks=pytest.mark.skip(reason=SKIP_MESSAGE))
]
REQUEST = ChatRequest("m", [Message("user", [TextPart("hi")])], stream=True, include_usage=True)


def translate(provider: str, client: str, pieces: list[bytes]) -> bytes:
    decoder = FORMATS[provider].stream_decoder()
    encoder = FORMATS[client].stream_encoder(REQUEST, Endpoint(client, "chat"))  # type: ignore[arg-type]
    out = b"".join(encoder.encode(decoder.feed(piece)) for piece in pieces)
    return out + encoder.encode(decoder.close()) + encoder.close()


def client_events(client: str, data: bytes) -> dict[str, Any]:
    """What the client's side sees, read back with that format's own decoder. Deltas may be
    batched differently by different cuts, so they are compared joined; ids and timestamps
    are generated per stream and left out."""
    decoder = FORMATS[client].stream_decoder()
    seen: dict[str, Any] = {"text": {}, "thinking": {}, "calls": {}, "finish": [], "usage": None, "failures": []}
    for event in decoder.feed(data) + decoder.close():
        if isinstance(event, TextDelta):
            seen["text"][event.index] = seen["text"].get(event.index, "") + event.text
        elif isinstance(event, ThinkingDelta):
            seen["thinking"][event.index] = seen["thinking"].get(event.index, "") + event.text
        elif isinstance(event, ToolCallStart):
            seen["calls"][(event.index, event.call_index)] = [event.name, ""]
        elif isinstance(event, ToolCallDelta):
            seen["calls"][(event.index, event.call_index)][1] += event.arguments
        elif isinstance(event, Finish):
            seen["finish"].append((event.index, event.reason))
        elif isinstance(event, UsageUpdate):
            seen["usage"] = event.usage
        elif isinstance(event, StreamFailure):
            seen["failures"].append(event.error.kind)
    return seen


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(points)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("fixture", STREAMS)
@pytest.mark.parametrize("client", ["openai", "anthropic", "gemini", "responses"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_split_of_a_provider_stream_gives_the_client_the_same_events(
    fixture: str, client: str, data: st.DataObject
) -> None:
    raw = fixture_bytes(fixture)
    provider = fixture.split("/")[0]
    whole = client_events(client, translate(provider, client, [raw]))
    points = data.draw(st.lists(st.integers(min_value=1, max_value=max(1, len(raw) - 1)), max_size=40))
    assert client_events(client, translate(provider, client, cut(raw, points))) == whole
    assert whole["finish"] or whole["failures"]  # the stream came to an end
