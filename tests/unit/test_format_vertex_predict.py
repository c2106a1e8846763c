"""Vertex AI's text embeddings (`:predict`): the request rendered from an OpenAI or Gemini client's
embeddings, the predictions read back with their token counts, and the record of each Vertex model
family saying whether it embeds and how many inputs one request may carry."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from extproc.config.load import load_text
from extproc.config.model import Provider
from extproc.errors import GatewayError
from extproc.formats import FORMATS, PROVIDER_APIS
from extproc.formats.canonical import EmbeddingRequest, EmbeddingResponse, Usage
from extproc.formats.endpoint import Endpoint
from extproc.formats.render_options import RenderOptions
from extproc.formats.vertex import predict
from extproc.provider_kinds import RECORDS
from extproc.providers import model_kind, provider_format, upstream_path
from extproc.providers.rendering import chat_for, embeddings_for

ROOT = "https://us-central1-aiplatform.googleapis.com/v1/projects/pr/locations/us-central1"
CONFIG = """
providers:
  - {name: vx, kind: vertex, vertex: {project: pr, location: us-central1}}
  - {name: claude, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K}
routes:
  - {model: "*", provider: vx}
"""
OPENAI_EMBEDDINGS = Endpoint("openai", "embeddings")
GEMINI_BATCH = Endpoint("gemini", "embeddings", path_model="text-embedding-005", batch=True)


def _provider(name: str = "vx") -> Provider:
    provider = load_text(CONFIG, {"K": "k"}, Path(".")).provider(name)
    assert provider is not None
    return provider


def _sent(request: EmbeddingRequest, model: str = "text-embedding-005") -> dict:
    made = embeddings_for(request, _provider(), model)
    return orjson.loads(made.body or b"")


# -- the request ---------------------------------------------------------------------------------


def test_an_openai_clients_inputs_become_instances_and_its_dimensions_the_output_dimensionality() -> None:
    body = b'{"model": "e", "input": ["alpha", "beta"], "dimensions": 256, "encoding_format": "base64"}'
    request = FORMATS["openai"].parse_embedding_request(body, OPENAI_EMBEDDINGS)
    assert _sent(request) == {
        "instances": [{"content": "alpha"}, {"content": "beta"}],
        "parameters": {"outputDimensionality": 256},
    }


def test_a_single_string_without_dimensions_is_one_instance_and_no_parameters() -> None:
    request = FORMATS["openai"].parse_embedding_request(b'{"model": "e", "input": "one"}', OPENAI_EMBEDDINGS)
    assert _sent(request) == {"instances": [{"content": "one"}]}


def test_a_gemini_clients_task_type_and_titles_reach_each_instance_in_vertexs_spelling() -> None:
    body = {
        "requests": [
            {
                "model": "models/text-embedding-005",
                "content": {"parts": [{"text": "first doc"}]},
                "taskType": "RETRIEVAL_DOCUMENT",
                "title": "Guide",
                "outputDimensionality": 128,
            },
            {
                "model": "models/text-embedding-005",
                "content": {"parts": [{"text": "second doc"}]},
                "taskType": "RETRIEVAL_DOCUMENT",
                "outputDimensionality": 128,
            },
        ]
    }
    request = FORMATS["gemini"].parse_embedding_request(orjson.dumps(body), GEMINI_BATCH)
    assert _sent(request) == {
        "instances": [
            {"content": "first doc", "task_type": "RETRIEVAL_DOCUMENT", "title": "Guide"},
            {"content": "second doc", "task_type": "RETRIEVAL_DOCUMENT"},
        ],
        "parameters": {"outputDimensionality": 128},
    }


def test_a_single_embed_content_title_is_read_and_carried_to_gemini_too() -> None:
    body = b'{"content": {"parts": [{"text": "d"}]}, "taskType": "RETRIEVAL_DOCUMENT", "title": "T"}'
    request = FORMATS["gemini"].parse_embedding_request(body, Endpoint("gemini", "embeddings", path_model="m"))
    assert request.titles == ["T"]
    rendered = orjson.loads(PROVIDER_APIS["gemini"].render_embedding_request(request, RenderOptions("m")).body)
    assert rendered["requests"][0]["title"] == "T"


def test_a_title_is_named_as_dropped_for_openai_which_has_no_field_for_it() -> None:
    request = EmbeddingRequest("m", ["d"], task_type="RETRIEVAL_DOCUMENT", titles=["T"])
    made = PROVIDER_APIS["openai"].render_embedding_request(request, RenderOptions("m"))
    assert made.dropped == ["task_type", "title"]
    assert b"T" not in made.body.replace(b"text", b"")


# -- the answer ----------------------------------------------------------------------------------


def test_predictions_are_the_vectors_in_order_and_their_token_counts_the_input_tokens() -> None:
    body = {
        "predictions": [
            {"embeddings": {"values": [0.5, -0.25], "statistics": {"token_count": 6, "truncated": False}}},
            {"embeddings": {"values": [1, 0], "statistics": {"token_count": 4.0, "truncated": True}}},
        ],
        "metadata": {"billableCharacterCount": 20},
    }
    assert predict.parse_embedding_response(orjson.dumps(body), "e") == EmbeddingResponse(
        "e", [[0.5, -0.25], [1.0, 0.0]], Usage(input_tokens=10)
    )


@pytest.mark.parametrize(
    ("statistics", "tokens"),
    [({"tokenCount": 3}, 3), ({}, 0), ({"token_count": "3"}, 0), ({"token_count": 2.5}, 0), ({"token_count": -1}, 0)],
)
def test_a_token_count_is_read_in_either_spelling_and_only_as_a_whole_number(statistics: dict, tokens: int) -> None:
    body = {"predictions": [{"embeddings": {"values": [0.1], "statistics": statistics}}]}
    usage = predict.parse_embedding_response(orjson.dumps(body)).usage
    assert usage is not None and usage.input_tokens == tokens


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"predictions": []}',
        b'{"predictions": [{"embeddings": {}}]}',
        b'{"predictions": [{"embeddings": {"values": ["x"]}}]}',
        b'{"predictions": [7]}',
    ],
)
def test_an_answer_without_vectors_is_a_provider_error(body: bytes) -> None:
    with pytest.raises(GatewayError) as caught:
        predict.parse_embedding_response(body, "e")
    assert caught.value.kind == "provider_error"


def test_a_google_error_on_predict_is_read_by_its_status() -> None:
    body = (
        b'{"error": {"code": 429, "message": "Quota exceeded for text-embedding-005.", "status": "RESOURCE_EXHAUSTED"}}'
    )
    error = PROVIDER_APIS["vertex-predict"].parse_error(429, body)
    assert error.kind == "rate_limit" and "Quota exceeded" in error.message


# -- the record per model family -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "api", "inputs"),
    [
        ("text-embedding-005", "vertex-predict", None),
        ("text-multilingual-embedding-002", "vertex-predict", None),
        ("textembedding-gecko@003", "vertex-predict", None),
        ("gemini-embedding-001", "vertex-predict", 1),
        ("gemini-2.5-flash", "gemini", None),
        ("claude-sonnet-4@20250514", "anthropic", None),
    ],
)
def test_each_vertex_family_says_whether_it_embeds_and_how_many_inputs_a_request_takes(
    model: str, api: str, inputs: int | None
) -> None:
    provider = _provider()
    kind = model_kind(provider, model)
    assert provider_format(provider, model) == api
    assert (kind.embeds is None or kind.embeds(model)) == (api == "vertex-predict")
    assert kind.embedding_inputs == inputs


def test_an_embedding_model_is_asked_by_predict_on_googles_publisher() -> None:
    provider = _provider()
    path = upstream_path(provider, "vertex-predict", "embeddings", "text-embedding-005", False)
    assert f"https://{provider.authority}{path}" == f"{ROOT}/publishers/google/models/text-embedding-005:predict"
    for model in ("a/b", "x?y", "text-embedding-005:streamGenerateContent"):
        assert upstream_path(provider, "vertex-predict", "embeddings", model, False).count(":predict") == 1
    with pytest.raises(GatewayError):
        upstream_path(provider, "vertex-predict", "chat", "text-embedding-005", False)


def test_each_vertex_record_that_embeds_has_a_format_that_renders_embeddings() -> None:
    request = EmbeddingRequest("m", ["x"])
    vertex = [kind for kind in RECORDS if kind.takes_vertex and kind.by_model is None]
    embedding = [kind for kind in vertex if kind.embeds is None or kind.embeds("m")]
    assert {kind.format for kind in embedding} == {"vertex-predict"}
    assert {kind.format for kind in vertex} - {"vertex-predict"} == {"gemini", "anthropic"}
    for kind in embedding:
        assert PROVIDER_APIS[kind.format].render_embedding_request(request, RenderOptions("m")).body


def test_gemini_embedding_001_refuses_several_inputs_with_a_400_naming_the_input() -> None:
    embeddings_for(EmbeddingRequest("e", ["one"]), _provider(), "gemini-embedding-001")
    with pytest.raises(GatewayError) as caught:
        embeddings_for(EmbeddingRequest("e", ["one", "two"]), _provider(), "gemini-embedding-001")
    assert (caught.value.kind, caught.value.param) == ("invalid_request", "input")
    assert "at most 1 input" in caught.value.message and "separate requests" in caught.value.message


@pytest.mark.parametrize(("name", "model"), [("vx", "gemini-2.5-flash"), ("vx", "claude-x"), ("claude", "claude-x")])
def test_embeddings_for_a_model_without_them_are_a_400(name: str, model: str) -> None:
    with pytest.raises(GatewayError) as caught:
        embeddings_for(EmbeddingRequest("e", ["x"]), _provider(name), model)
    assert (caught.value.kind, caught.value.param) == ("invalid_request", "model")
    assert "no embeddings" in caught.value.message


def test_a_chat_request_for_a_vertex_embedding_model_is_a_400_naming_the_model() -> None:
    body = b'{"model": "e", "messages": [{"role": "user", "content": "hi"}]}'
    request = FORMATS["openai"].parse_request(body, Endpoint("openai", "chat"))
    with pytest.raises(GatewayError) as caught:
        chat_for(request, body, "openai", _provider(), "text-embedding-005")
    assert (caught.value.kind, caught.value.param) == ("invalid_request", "model")
