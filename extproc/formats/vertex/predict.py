"""Provider side, both directions: Vertex AI's text embeddings (`:predict` of text-embedding-005,
text-multilingual-embedding-002, gemini-embedding-001) <-> the canonical embeddings.

Request: `{"instances": [{"content", "task_type", "title"}], "parameters": {"outputDimensionality"}}`
(the instance's keys are snake_case, as Google's SDKs send them). Answer: `{"predictions":
[{"embeddings": {"values": [...], "statistics": {"token_count", "truncated"}}}], "metadata":
{"billableCharacterCount"}}`; the input tokens are the statistics' token counts summed.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.formats.answer_values import answer_object, provider_error, vector
from extproc.formats.canonical import EmbeddingRequest, EmbeddingResponse, Usage
from extproc.formats.json_fields import is_int
from extproc.formats.render_options import RenderedRequest, RenderOptions


def render_embedding_request(req: EmbeddingRequest, options: RenderOptions) -> RenderedRequest:
    instances: list[dict[str, Any]] = []
    for i, text in enumerate(req.inputs):
        instance: dict[str, Any] = {"content": text}
        if req.task_type is not None:
            instance["task_type"] = req.task_type
        if req.titles and req.titles[i] is not None:
            instance["title"] = req.titles[i]
        instances.append(instance)
    body: dict[str, Any] = {"instances": instances}
    if req.dimensions is not None:
        body["parameters"] = {"outputDimensionality": req.dimensions}
    return RenderedRequest(orjson.dumps(body))


def _token_count(embeddings: dict[str, Any]) -> int:
    """The input's tokens: `token_count` as the model writes it (a JSON number, maybe 6.0), or the
    documented `tokenCount`; 0 when neither is a whole number."""
    statistics = embeddings.get("statistics")
    if not isinstance(statistics, dict):
        return 0
    count = statistics.get("token_count", statistics.get("tokenCount"))
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    return count if is_int(count) and count >= 0 else 0


def _values(prediction: Any) -> tuple[list[float], int]:
    embeddings = prediction.get("embeddings") if isinstance(prediction, dict) else None
    values = vector(embeddings.get("values")) if isinstance(embeddings, dict) else None
    if not isinstance(embeddings, dict) or values is None:
        raise provider_error("the provider returned a prediction without embedding values")
    return values, _token_count(embeddings)


def parse_embedding_response(body: bytes, model: str = "") -> EmbeddingResponse:
    predictions = answer_object(body).get("predictions")
    if not isinstance(predictions, list) or not predictions:
        raise provider_error("the provider returned no predictions")
    read = [_values(prediction) for prediction in predictions]
    tokens = sum(count for _, count in read)
    return EmbeddingResponse(model=model, vectors=[vector for vector, _ in read], usage=Usage(input_tokens=tokens))
