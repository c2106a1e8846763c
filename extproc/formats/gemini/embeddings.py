"""Embeddings, both sides: embedContent / batchEmbedContents <-> the canonical model."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.formats.answer_values import answer_object, provider_error
from extproc.formats.canonical import EmbeddingRequest, EmbeddingResponse
from extproc.formats.client_errors import invalid
from extproc.formats.gemini.answers import error_from
from extproc.formats.gemini.common import either_spelling, request_and_model
from extproc.formats.input_bounds import MAX_DIMENSIONS, MAX_EMBEDDING_INPUTS, check_count, check_positive
from extproc.formats.json_fields import as_array, as_object, as_proto3_int, as_string
from extproc.formats.render_options import RenderedRequest, RenderOptions
from extproc.formats.repeated_keys import ARRAY, OBJECT, Field

# The text embedded (the model comes from the URL): never repeated.
SINGLE_FIELDS = (Field(("content",), OBJECT),)
BATCH_FIELDS = (Field(("requests",), ARRAY),)


def _embed_text(content: Any, param: str) -> str:
    content = as_object(content, param)
    parts = as_array(content.get("parts"), param + ".parts")
    texts = []
    for j, part in enumerate(parts):
        p = f"{param}.parts[{j}]"
        text = as_object(part, p).get("text")
        if text is None:
            raise invalid("only text parts can be embedded", p)
        texts.append(as_string(text, p + ".text"))
    if not texts:
        raise invalid("'parts' must not be empty", param + ".parts")
    return "\n".join(texts)


def _embed_options(req: dict, param: str) -> tuple[str | None, int | None]:
    task = either_spelling(req, "taskType", "task_type")
    dims = either_spelling(req, "outputDimensionality", "output_dimensionality")
    if dims is not None:
        dims = as_proto3_int(dims, param + "outputDimensionality")
        check_positive(dims, MAX_DIMENSIONS, param + "outputDimensionality")
    return None if task is None else as_string(task, param + "taskType"), dims


def _title(req: dict, param: str) -> str | None:
    title = req.get("title")
    return None if title is None else as_string(title, param + "title")


def _titles(titles: list[str | None]) -> list[str | None]:
    """One per input, or none at all when no request has one."""
    return titles if any(title is not None for title in titles) else []


def parse_embedding_request(body: bytes, path_model: str | None, *, batch: bool = False) -> EmbeddingRequest:
    """`:embedContent` (batch=False) or `:batchEmbedContents` (batch=True).
    A batch must use one taskType and one outputDimensionality for all its
    requests (the canonical request has one); each request has its own title."""
    data, model = request_and_model(body, path_model, BATCH_FIELDS if batch else SINGLE_FIELDS)
    if not batch:
        if data.get("content") is None:
            raise invalid("'content' is required", "content")
        task, dims = _embed_options(data, "")
        text = _embed_text(data["content"], "content")
        return EmbeddingRequest(model, [text], dims, task_type=task, titles=_titles([_title(data, "")]))
    requests = data.get("requests")
    if requests is None:
        raise invalid("'requests' is required", "requests")
    requests = as_array(requests, "requests")
    if not requests:
        raise invalid("'requests' must not be empty", "requests")
    check_count(requests, MAX_EMBEDDING_INPUTS, "requests")
    inputs = []
    titles: list[str | None] = []
    options = None
    for i, item in enumerate(requests):
        param = f"requests[{i}]"
        item = as_object(item, param)
        if item.get("content") is None:
            raise invalid("'content' is required", param + ".content")
        inputs.append(_embed_text(item["content"], param + ".content"))
        titles.append(_title(item, param + "."))
        these = _embed_options(item, param + ".")
        if options is None:
            options = these
        elif these != options:
            raise invalid(
                "all requests of a batch must use the same taskType and outputDimensionality",
                param,
            )
    task, dims = options or (None, None)
    return EmbeddingRequest(model, inputs, dims, task_type=task, titles=_titles(titles))


def render_embedding_response(resp: EmbeddingResponse, *, batch: bool = False) -> bytes:
    if batch:
        return orjson.dumps({"embeddings": [{"values": v} for v in resp.vectors]})
    return orjson.dumps({"embedding": {"values": resp.vectors[0] if resp.vectors else []}})


def render_embedding_request(req: EmbeddingRequest, options: RenderOptions) -> RenderedRequest:
    """Always the `:batchEmbedContents` shape, whatever the number of inputs."""
    model = options.model if options.model.startswith("models/") else "models/" + options.model
    requests = []
    for i, text in enumerate(req.inputs):
        item: dict[str, Any] = {"model": model, "content": {"parts": [{"text": text}]}}
        if req.task_type is not None:
            item["taskType"] = req.task_type
        if req.titles and req.titles[i] is not None:
            item["title"] = req.titles[i]
        if req.dimensions is not None:
            item["outputDimensionality"] = req.dimensions
        requests.append(item)
    return RenderedRequest(orjson.dumps({"requests": requests}))


def _values(item: Any) -> list[float]:
    values = item.get("values") if isinstance(item, dict) else None
    if not isinstance(values, list):
        raise provider_error("the provider returned an embedding without values")
    return values


def parse_embedding_response(body: bytes, model: str = "") -> EmbeddingResponse:
    """Either shape: `{"embedding": {...}}` or `{"embeddings": [...]}`."""
    data = answer_object(body)
    if "error" in data:
        raise error_from(0, data["error"], "the provider returned an error")
    if "embeddings" in data:
        items = data["embeddings"]
        if not isinstance(items, list):
            raise provider_error("the provider returned malformed embeddings")
        vectors = [_values(item) for item in items]
    elif "embedding" in data:
        vectors = [_values(data["embedding"])]
    else:
        raise provider_error("the provider returned no embeddings")
    return EmbeddingResponse(model=model, vectors=vectors)
