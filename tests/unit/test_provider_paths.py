"""upstream_path: a model name, whatever it holds, stays one percent-encoded path segment."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from extproc.config.model import Provider
from extproc.errors import GatewayError
from extproc.providers import provider_format, upstream_path

HOSTILE = ["../../v1/files", "a?key=x", "a#b", "a/b", "a:streamGenerateContent", "%2e%2e", "a b\r\nx: y", "./."]
KINDS = {
    "openai": Provider("p", "openai", base_url="https://api.openai.com/v1"),
    "openai-compatible": Provider("p", "openai-compatible", base_url="http://127.0.0.1:8000/v1"),
    "mock": Provider("p", "mock", base_url="http://127.0.0.1:9"),
    "anthropic": Provider("p", "anthropic", base_url="https://api.anthropic.com"),
    "gemini": Provider("p", "gemini", base_url="https://generativelanguage.googleapis.com"),
    "azure": Provider("p", "openai", base_url="https://r.openai.azure.com", azure_api_version="2024-10-21"),
    "vertex": Provider("p", "vertex", base_url="https://aiplatform.googleapis.com/v1/projects/p/locations/global"),
}
# what each kind's path is with a plain model "m" (None: the model is not in the path)
PLAIN = {
    ("gemini", "chat", False): "/v1beta/models/m:generateContent",
    ("gemini", "chat", True): "/v1beta/models/m:streamGenerateContent?alt=sse",
    ("gemini", "embeddings", False): "/v1beta/models/m:batchEmbedContents",
    ("azure", "chat", False): "/openai/deployments/m/chat/completions?api-version=2024-10-21",
    ("azure", "embeddings", False): "/openai/deployments/m/embeddings?api-version=2024-10-21",
}
# Vertex AI's embeddings are its embedding models' alone (test_vertex_chooses_...)
CASES = [
    (kind, op, stream)
    for kind in KINDS
    for op in ("chat", "embeddings")
    for stream in (False, True)
    if (kind, op) != ("vertex", "embeddings")
]


@pytest.mark.parametrize(("kind", "operation", "stream"), CASES)
@pytest.mark.parametrize("model", HOSTILE)
def test_hostile_model_stays_inside_its_own_path_segment(kind: str, operation: str, stream: bool, model: str) -> None:
    provider = KINDS[kind]
    api = provider_format(provider, model)
    plain = upstream_path(provider, api, operation, "m", stream)  # type: ignore[arg-type]
    path = upstream_path(provider, api, operation, model, stream)  # type: ignore[arg-type]
    assert not set("#\r\n ") & set(path)
    if kind not in ("gemini", "azure", "vertex"):
        assert path == plain  # OpenAI, Anthropic, mock: the model travels in the body only
        return
    # the plain path with the model swapped in as one opaque segment: query and other segments unchanged
    split, plain_split = urlsplit(path), urlsplit(plain)
    assert split.query == plain_split.query
    segments, plain_segments = split.path.split("/"), plain_split.path.split("/")
    assert ".." not in segments and "." not in segments
    assert len(segments) == len(plain_segments)
    changed = [(s, p) for s, p in zip(segments, plain_segments, strict=True) if s != p]
    assert len(changed) == 1
    segment, plain_segment = changed[0]
    if kind in ("gemini", "vertex"):  # models/{model}:method
        (name, method), (_, plain_method) = segment.rsplit(":", 1), plain_segment.rsplit(":", 1)
        assert method == plain_method and ":" not in name
        segment = name
    assert unquote(segment) == model


def test_plain_model_paths_are_what_each_provider_serves() -> None:
    for (kind, operation, stream), expected in PLAIN.items():
        provider = KINDS[kind]
        assert upstream_path(provider, provider_format(provider, "m"), operation, "m", stream) == expected  # type: ignore[arg-type]
    assert upstream_path(KINDS["gemini"], "gemini", "chat", "m", True, sse=False) == (
        "/v1beta/models/m:streamGenerateContent"
    )
    assert upstream_path(KINDS["openai"], "openai", "chat", "m", True, sse=False) == "/v1/chat/completions"
    assert upstream_path(KINDS["gemini"], "gemini", "chat", "models/gemini-2.5-flash", False) == (
        "/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert upstream_path(KINDS["azure"], "openai", "chat", "gpt-4o.mini_1", False).startswith(
        "/openai/deployments/gpt-4o.mini_1/"
    )


def test_responses_paths_name_no_model_and_keep_azures_api_version() -> None:
    azure = Provider("p", "openai", base_url="https://r.openai.azure.com", azure_api_version="2025-04-01-preview")
    for model in ("m", *HOSTILE):
        assert upstream_path(KINDS["openai"], "responses", "chat", model, True) == "/v1/responses"
        assert upstream_path(KINDS["openai"], "responses", "count_tokens", model, False) == (
            "/v1/responses/input_tokens"
        )
        assert upstream_path(azure, "responses", "chat", model, False) == (
            "/openai/responses?api-version=2025-04-01-preview"
        )


@pytest.mark.parametrize("model", [".", ".."])
def test_dot_model_is_refused_rather_than_resolved_away_by_a_url_normaliser(model: str) -> None:
    for kind in ("azure", "gemini", "vertex"):
        with pytest.raises(GatewayError) as caught:
            upstream_path(KINDS[kind], provider_format(KINDS[kind], model), "chat", model, False)
        assert (caught.value.kind, caught.value.param) == ("invalid_request", "model")


VERTEX_ROOT = "/v1/projects/p/locations/global"


def test_vertex_chooses_the_publisher_and_method_by_the_models_family() -> None:
    vertex = KINDS["vertex"]
    gemini, claude = "gemini-2.5-flash", "claude-sonnet-4@20250514"
    assert (provider_format(vertex, gemini), provider_format(vertex, claude)) == ("gemini", "anthropic")
    google, anthropic = f"{VERTEX_ROOT}/publishers/google/models", f"{VERTEX_ROOT}/publishers/anthropic/models"
    assert upstream_path(vertex, "gemini", "chat", gemini, False) == f"{google}/{gemini}:generateContent"
    assert upstream_path(vertex, "gemini", "chat", gemini, True) == (f"{google}/{gemini}:streamGenerateContent?alt=sse")
    assert upstream_path(vertex, "gemini", "count_tokens", gemini, False) == f"{google}/{gemini}:countTokens"
    # Claude's @version stays as Google writes it; the count has one endpoint for every model
    assert upstream_path(vertex, "anthropic", "chat", claude, False) == f"{anthropic}/{claude}:rawPredict"
    assert upstream_path(vertex, "anthropic", "chat", claude, True) == f"{anthropic}/{claude}:streamRawPredict"
    assert upstream_path(vertex, "anthropic", "count_tokens", claude, False) == f"{anthropic}/count-tokens:rawPredict"
    # embedding models answer :predict; a chat model has no embeddings there
    embedder = "text-embedding-005"
    assert upstream_path(vertex, provider_format(vertex, embedder), "embeddings", embedder, False) == (
        f"{google}/{embedder}:predict"
    )
    with pytest.raises(GatewayError) as caught:
        upstream_path(vertex, "gemini", "embeddings", gemini, False)
    assert caught.value.kind == "invalid_request"


@pytest.mark.parametrize(
    ("version", "expected"),
    [("v1", "/openai/v1/responses"), ("preview", "/openai/v1/responses?api-version=preview")],
)
def test_azure_v1_api_serves_responses_on_its_own_path_with_the_deployment_in_the_body(
    version: str, expected: str
) -> None:
    azure = Provider("p", "openai", base_url="https://r.openai.azure.com", azure_api_version=version)
    assert upstream_path(azure, "responses", "chat", "my-deployment", False) == expected
    chat = upstream_path(azure, "openai", "chat", "my-deployment", False)
    assert chat == expected.replace("responses", "chat/completions")
    assert "my-deployment" not in chat
