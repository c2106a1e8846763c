"""Bedrock, provider side, beyond chat: embeddings on InvokeModel (Titan Text v1/v2, Cohere Embed, each
in its own body, and their answers read back, usage included) and CountTokens (a prompt as Converse or
InvokeModel would get it, in the operation's `input`), and which models the kind's record says it
embeds and counts for."""

from __future__ import annotations

import base64

import orjson
import pytest

from extproc.config.model import Provider
from extproc.errors import GatewayError
from extproc.formats.bedrock import count, embeddings
from extproc.formats.canonical import ChatRequest, EmbeddingRequest, Message, TextPart, Tool
from extproc.formats.render_options import RenderOptions
from extproc.providers import upstream_path
from extproc.providers.rendering import count_for, counts_tokens, embeddings_for

TITAN = "amazon.titan-embed-text-v2:0"
TITAN_V1 = "amazon.titan-embed-text-v1"
COHERE = "cohere.embed-english-v3"
COHERE_V4 = "cohere.embed-v4:0"
CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
NOVA = "us.amazon.nova-micro-v1:0"
BEDROCK = Provider("bedrock", "bedrock", base_url="https://bedrock-runtime.us-east-1.amazonaws.com")


def _body(request: EmbeddingRequest, model: str, policy: str = "drop") -> tuple[dict[str, object], list[str]]:
    rendered = embeddings.render_request(request, RenderOptions(model, policy))  # type: ignore[arg-type]
    return orjson.loads(rendered.body), rendered.dropped


# -- embeddings: requests -----------------------------------------------------------------------


def test_titan_v2_gets_one_input_text_its_dimensions_and_unit_vectors() -> None:
    body, dropped = _body(EmbeddingRequest(TITAN, ["hello"], dimensions=512), TITAN)
    assert body == {"inputText": "hello", "dimensions": 512, "normalize": True} and dropped == []


def test_titan_v1_takes_the_text_alone_and_dimensions_are_dropped_or_refused_per_policy() -> None:
    body, dropped = _body(EmbeddingRequest(TITAN_V1, ["hello"], dimensions=256), TITAN_V1)
    assert body == {"inputText": "hello"} and dropped == ["dimensions"]
    with pytest.raises(GatewayError) as refused:
        _body(EmbeddingRequest(TITAN_V1, ["hello"], dimensions=256), TITAN_V1, "reject")
    assert refused.value.param == "dimensions"


def test_several_inputs_to_titan_are_refused_naming_the_one_input_limit() -> None:
    with pytest.raises(GatewayError) as refused:
        _body(EmbeddingRequest(TITAN, ["a", "b", "c"]), TITAN)
    assert refused.value.kind == "invalid_request" and refused.value.param == "input"
    assert "one input per request" in refused.value.message and "has 3" in refused.value.message


def test_titan_v2_dimensions_it_cannot_make_are_refused_naming_those_it_can() -> None:
    with pytest.raises(GatewayError) as refused:
        _body(EmbeddingRequest(TITAN, ["a"], dimensions=768), TITAN)
    assert refused.value.param == "dimensions" and "256, 512 or 1024" in refused.value.message


@pytest.mark.parametrize(
    ("task_type", "input_type"),
    [(None, "search_document"), ("RETRIEVAL_QUERY", "search_query"), ("CLUSTERING", "clustering")],
)
def test_cohere_gets_every_text_in_one_call_with_the_input_type_the_task_names(
    task_type: str | None, input_type: str
) -> None:
    body, dropped = _body(EmbeddingRequest(COHERE, ["a", "b"], task_type=task_type), COHERE)
    assert body == {"texts": ["a", "b"], "input_type": input_type, "embedding_types": ["float"]}
    assert dropped == []


def test_cohere_refuses_more_than_96_texts_and_only_v4_takes_dimensions() -> None:
    with pytest.raises(GatewayError) as refused:
        _body(EmbeddingRequest(COHERE, ["a"] * 97), COHERE)
    assert "at most 96" in refused.value.message and refused.value.param == "input"
    body, dropped = _body(EmbeddingRequest(COHERE, ["a"], dimensions=512), COHERE)
    assert "output_dimension" not in body and dropped == ["dimensions"]
    body, dropped = _body(EmbeddingRequest(COHERE_V4, ["a"], dimensions=512), COHERE_V4)
    assert body["output_dimension"] == 512 and dropped == []


# -- embeddings: answers ------------------------------------------------------------------------


def test_titans_answer_gives_its_vector_and_its_own_token_count() -> None:
    body = orjson.dumps(
        {"embedding": [0.5, -0.25], "embeddingsByType": {"float": [0.5, -0.25]}, "inputTextTokenCount": 7}
    )
    answer = embeddings.parse_response(body, "titan")
    assert answer.vectors == [[0.5, -0.25]] and answer.usage is not None and answer.usage.input_tokens == 7


@pytest.mark.parametrize(
    "vectors", [[[0.1, 0.2], [0.3, 0.4]], {"float": [[0.1, 0.2], [0.3, 0.4]]}], ids=["floats", "by_type"]
)
def test_cohere_answers_in_either_shape_give_their_vectors_and_an_estimate_of_the_tokens(vectors: object) -> None:
    body = orjson.dumps({"id": "x", "embeddings": vectors, "texts": ["a" * 40, "b"], "response_type": "any"})
    answer = embeddings.parse_response(body)
    assert answer.vectors == [[0.1, 0.2], [0.3, 0.4]]
    assert answer.usage is not None and answer.usage.input_tokens == 10 + 1  # 4 characters a token, 1 at least


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"embeddings": "x"}', b'{"embedding": ["a"]}', b"{}"])
def test_an_embedding_answer_the_gateway_cannot_read_is_a_provider_error(body: bytes) -> None:
    with pytest.raises(GatewayError) as failed:
        embeddings.parse_response(body)
    assert failed.value.kind == "provider_error"


# -- the kind's record: which models embed and count, and their paths -----------------------------


def test_embeddings_go_to_invoke_and_a_count_to_the_foundation_models_count_tokens() -> None:
    assert upstream_path(BEDROCK, "bedrock-converse", "embeddings", TITAN, False) == (
        "/model/amazon.titan-embed-text-v2%3A0/invoke"
    )
    assert upstream_path(BEDROCK, "bedrock-invoke", "count_tokens", CLAUDE, False) == (
        "/model/anthropic.claude-sonnet-4-20250514-v1%3A0/count-tokens"
    )
    arn = "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-x"
    assert upstream_path(BEDROCK, "bedrock-invoke", "count_tokens", arn, False).endswith(
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.anthropic.claude-x/count-tokens"
    )


def test_a_chat_model_has_no_embeddings_on_bedrock() -> None:
    with pytest.raises(GatewayError) as refused:
        embeddings_for(EmbeddingRequest(NOVA, ["a"]), BEDROCK, NOVA)
    assert refused.value.param == "model" and NOVA in refused.value.message
    assert orjson.loads(embeddings_for(EmbeddingRequest(COHERE, ["a"]), BEDROCK, COHERE).body or b"")["texts"] == ["a"]


def test_bedrock_counts_for_claude_and_leaves_other_families_to_the_estimate() -> None:
    assert counts_tokens(BEDROCK, "anthropic", CLAUDE) and counts_tokens(BEDROCK, "responses", CLAUDE)
    assert not counts_tokens(BEDROCK, "anthropic", NOVA) and not counts_tokens(BEDROCK, "responses", NOVA)


# -- CountTokens ----------------------------------------------------------------------------------


def _prompt(model: str) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[Message("system", [TextPart("be brief")]), Message("user", [TextPart("count me")])],
        tools=[Tool("get_weather", "the weather", {"type": "object", "properties": {}})],
        max_tokens=None,
    )


def test_a_converse_count_carries_messages_system_and_tools_and_nothing_of_generation() -> None:
    request = _prompt(NOVA)
    request.temperature = 0.5
    rendered = count.converse_count_request(request, RenderOptions(NOVA))
    counted = orjson.loads(rendered.body)["input"]["converse"]
    assert counted["messages"] == [{"role": "user", "content": [{"text": "count me"}]}]
    assert counted["system"] == [{"text": "be brief"}]
    assert counted["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    assert set(counted) <= {"messages", "system", "toolConfig", "additionalModelRequestFields"}


def test_an_invoke_count_carries_claudes_body_as_a_base64_blob() -> None:
    rendered = count.invoke_count_request(_prompt(CLAUDE), RenderOptions(CLAUDE))
    body = orjson.loads(base64.b64decode(orjson.loads(rendered.body)["input"]["invokeModel"]["body"]))
    assert body["anthropic_version"] == "bedrock-2023-05-31" and "model" not in body
    assert body["system"] == "be brief" and body["max_tokens"] > 0


def test_an_anthropic_clients_own_count_gets_a_max_tokens_above_its_thinking_budget() -> None:
    own = orjson.dumps(
        {
            "model": "claude",
            "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 4000},
        }
    )
    wrapped = orjson.loads(count.own_count_body(own, ("interleaved-thinking-2025-05-14",)))
    body = orjson.loads(base64.b64decode(wrapped["input"]["invokeModel"]["body"]))
    assert body["max_tokens"] == 4001 and body["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    assert "model" not in body and body["anthropic_version"] == "bedrock-2023-05-31"


def test_count_for_picks_invoke_or_converse_as_the_providers_api_does_for_the_model() -> None:
    converse = Provider("b", "bedrock", base_url="https://x", bedrock_api="converse")
    own = orjson.dumps({"model": "claude", "messages": [{"role": "user", "content": "hi"}]})
    request = ChatRequest(model="claude", messages=[Message("user", [TextPart("hi")])])
    assert "invokeModel" in orjson.loads(count_for(request, own, "anthropic", BEDROCK, CLAUDE).body or b"")["input"]
    assert "converse" in orjson.loads(count_for(request, own, "anthropic", converse, CLAUDE).body or b"")["input"]
    # another client's request to Claude on invoke: rendered from the canonical request
    rendered = orjson.loads(count_for(request, b"{}", "responses", BEDROCK, CLAUDE).body or b"")
    invoke_body = orjson.loads(base64.b64decode(rendered["input"]["invokeModel"]["body"]))
    assert invoke_body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


@pytest.mark.parametrize("body", [b"nope", b"{}", b"[1]"])
def test_a_count_answer_without_input_tokens_is_a_provider_error(body: bytes) -> None:
    assert count.parse_count(b'{"inputTokens": 42}') == 42
    with pytest.raises(GatewayError) as failed:
        count.parse_count(body)
    assert failed.value.kind == "provider_error"
