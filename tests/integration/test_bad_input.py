"""Whatever a client sends, it gets an answer in its own API's format: success or a 4xx
error with a message and the request id; never our own 500, never a hang."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
ROLES = st.sampled_from(["user", "assistant", "system", "developer", "tool", "model", "function", "x"])
MESSAGE = st.fixed_dictionaries(
    {"role": ROLES},
    optional={"content": JSON_VALUES | st.text(max_size=30), "tool_calls": JSON_VALUES, "tool_call_id": JSON_VALUES},
)
CHAT_LIKE = st.fixed_dictionaries(
    {"model": st.sampled_from(["mock-1", "gpt-4o-mini", "claude-test-1", "nope"]) | JSON_VALUES},
    optional={
        "messages": st.lists(MESSAGE, max_size=4) | JSON_VALUES,
        "contents": JSON_VALUES,
        "stream": JSON_VALUES,
        "max_tokens": JSON_VALUES,
        "tools": JSON_VALUES,
        "temperature": JSON_VALUES,
    },
)
ENDPOINTS = [
    ("/v1/chat/completions", {}),
    ("/v1/messages", {"anthropic-version": "2023-06-01"}),
    ("/v1beta/models/mock-1:generateContent", {}),
    ("/v1beta/models/mock-1:streamGenerateContent?alt=sse", {}),
    ("/v1/embeddings", {}),
]


def _error_message(path: str, body: dict) -> str:
    if path.startswith("/v1/messages"):
        assert body["type"] == "error"
        return body["error"]["message"]
    return body["error"]["message"]


@pytest.mark.parametrize(("path", "headers"), ENDPOINTS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=CHAT_LIKE | JSON_VALUES, raw=st.none() | st.binary(max_size=40))
def test_any_body_gets_an_answer_in_the_clients_format(
    gateway: GatewayStack, path: str, headers: dict, payload: object, raw: bytes | None
) -> None:
    kwargs = {"content": raw} if raw is not None else {"json": payload}
    response = httpx.post(gateway.base_url + path, headers=headers, timeout=20, **kwargs)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        message = _error_message(path, response.json())
        assert message
        assert response.headers["x-request-id"]
