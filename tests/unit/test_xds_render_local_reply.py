"""xds/render_local_reply.py: Envoy's own error answers, each in the client's error format chosen by
the request's path, and the codec's refusals in one body every SDK reads as its own."""

from __future__ import annotations

import json
from typing import Any

from extproc.errors import ERROR_TABLE
from extproc.xds.render_local_reply import local_reply_config

MAPPERS: list[dict[str, Any]] = local_reply_config()["mappers"]


def formats_of(mapper: dict[str, Any]) -> str:
    """Which client format a mapper answers in, from its body's shape."""
    body = mapper["body_format_override"]["json_format"]
    if body.get("type") == "error":
        return "anthropic"
    return "gemini" if "status" in body["error"] else "openai"


def path_filter(mapper: dict[str, Any]) -> str:
    text = json.dumps(mapper["filter"])
    return "anthropic" if "/v1/messages" in text else "gemini" if "models/" in text else "any"


def test_each_reply_envoy_makes_for_the_gateway_has_one_body_per_client_format_in_its_status() -> None:
    mapped = MAPPERS[2:]  # after the two codec refusals
    assert len(mapped) == 5 * 3
    assert [mapper["status_code"] for mapper in mapped[::3]] == [503, 504, 426, 502, 429]
    for group in (mapped[i : i + 3] for i in range(0, len(mapped), 3)):
        assert [path_filter(mapper) for mapper in group] == ["anthropic", "gemini", "any"]  # the catch-all last
        assert [formats_of(mapper) for mapper in group] == ["anthropic", "gemini", "openai"]
        for mapper in group:
            assert "%REQ(x-request-id)%" in json.dumps(mapper["body_format_override"])
            assert mapper["body_format_override"]["content_type"] == "application/json"


def test_the_gemini_body_carries_the_status_of_its_error_kind() -> None:
    unavailable_gemini = MAPPERS[2 + 1]["body_format_override"]["json_format"]["error"]
    assert unavailable_gemini["code"] == ERROR_TABLE["unavailable"][0]
    assert unavailable_gemini["status"] == ERROR_TABLE["unavailable"][3]


def test_a_codec_refusal_gets_a_made_up_request_id_and_every_apis_error_fields() -> None:
    too_large, malformed = MAPPERS[:2]
    assert "response.code == 431" in json.dumps(too_large["filter"])
    assert "response.code ==" not in json.dumps(malformed["filter"])  # any other status the codec answers
    for refusal in (too_large, malformed):
        assert refusal["headers_to_add"][0]["header"] == {"key": "x-request-id", "value": "%UNIQUE_ID%"}
        body = refusal["body_format_override"]["json_format"]
        assert body["type"] == "error" and body["request_id"] == "%RESP(x-request-id)%"  # Anthropic's
        assert {"type", "message", "param", "code"} <= set(body["error"])  # OpenAI's
        assert {"code", "message", "status", "details"} <= set(body["error"])  # Gemini's


def test_a_provider_reset_envoy_answers_past_the_extproc_is_a_provider_error_in_each_format() -> None:
    """Only the reset after the answer's headers reached Envoy (the ext_proc held them): a reset
    before them goes through the ext_proc, which renders it itself."""
    resets = [m for m in MAPPERS if "upstream_reset_after_response_started" in json.dumps(m["filter"])]
    assert [formats_of(mapper) for mapper in resets] == ["anthropic", "gemini", "openai"]
    assert {mapper["status_code"] for mapper in resets} == {502}
    assert not any("upstream_reset_before_response_started" in json.dumps(m["filter"]) for m in MAPPERS)
