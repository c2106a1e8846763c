"""Embeddings, both sides: `/v1/embeddings` requests and answers."""

from __future__ import annotations

import base64
from array import array
from typing import Any, Literal

import orjson

from extproc.errors import GatewayError
from extproc.formats.answer_values import provider_error, vector, whole_number
from extproc.formats.canonical import EmbeddingRequest, EmbeddingResponse, Usage
from extproc.formats.client_errors import invalid
from extproc.formats.input_bounds import MAX_DIMENSIONS, MAX_EMBEDDING_INPUTS, check_count, check_positive
from extproc.formats.json_fields import is_int, opt_int, request_object
from extproc.formats.openai.answers import load_answer
from extproc.formats.openai.common import LITTLE_ENDIAN, SHAPE_ERRORS
from extproc.formats.openai.request import model_of
from extproc.formats.render_options import RenderedRequest, RenderOptions, Unsupported
from extproc.formats.repeated_keys import STRING, STRING_OR_ARRAY, Field

# The model and the text embedded: never repeated.
EMBEDDING_FIELDS = (
    Field(("model",), STRING),
    Field(("input",), STRING_OR_ARRAY),
)


def _parse_embedding_request(body: bytes, path_model: str | None) -> EmbeddingRequest:
    data = request_object(body, EMBEDDING_FIELDS, "body", "request body must be a JSON object")
    model = model_of(data, path_model)
    raw = data.get("input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw:
        check_count(raw, MAX_EMBEDDING_INPUTS, "input")
        if all(isinstance(s, str) for s in raw):
            inputs = raw
        elif all(is_int(x) or (isinstance(x, list) and all(is_int(y) for y in x)) for x in raw):
            raise invalid("token-array input is not supported by this gateway; send text strings", "input")
        else:
            raise invalid("'input' must be a string or an array of strings", "input")
    elif isinstance(raw, list):
        raise invalid("'input' must not be empty", "input")
    else:
        raise invalid("'input' is required and must be a string or an array of strings", "input")
    dimensions = opt_int(data, "dimensions")
    if dimensions is not None:
        check_positive(dimensions, MAX_DIMENSIONS, "dimensions")
    raw_encoding = data.get("encoding_format")
    encoding: Literal["float", "base64"]
    if raw_encoding is None or raw_encoding == "float":
        encoding = "float"
    elif raw_encoding == "base64":
        encoding = "base64"
    else:
        raise invalid("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    return EmbeddingRequest(model=model, inputs=inputs, dimensions=dimensions, encoding_format=encoding)


def parse_embedding_request(body: bytes, path_model: str | None = None) -> EmbeddingRequest:
    """A client's /v1/embeddings body -> EmbeddingRequest (GatewayError on bad input)."""
    try:
        return _parse_embedding_request(body, path_model)
    except GatewayError:
        raise
    except SHAPE_ERRORS:
        raise invalid("malformed embedding request", "body") from None


def _encode_vector(vec: list[float]) -> str:
    a = array("f", vec)
    if not LITTLE_ENDIAN:
        a.byteswap()
    return base64.b64encode(a.tobytes()).decode("ascii")


def _decode_vector(text: str) -> list[float]:
    a = array("f")
    a.frombytes(base64.b64decode(text))
    if not LITTLE_ENDIAN:
        a.byteswap()
    return a.tolist()


def render_embedding_response(resp: EmbeddingResponse, encoding_format: str = "float") -> bytes:
    """EmbeddingResponse -> OpenAI list JSON. `encoding_format` is the client's
    request field (the SDK asks for "base64" by default): base64 of float32 LE."""
    if encoding_format == "base64":
        data = [{"object": "embedding", "index": i, "embedding": _encode_vector(v)} for i, v in enumerate(resp.vectors)]
    else:
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(resp.vectors)]
    tokens = resp.usage.input_tokens if resp.usage is not None else 0
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": resp.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def render_embedding_request(req: EmbeddingRequest, options: RenderOptions) -> RenderedRequest:
    unsupported = Unsupported(options.unsupported)
    # the client's encoding: a same-format answer may be passed through untouched
    body: dict[str, Any] = {"model": options.model, "input": req.inputs, "encoding_format": req.encoding_format}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    if req.task_type is not None:
        unsupported.lacks("task_type")
    if req.titles:
        unsupported.lacks("title")
    return RenderedRequest(orjson.dumps(body), unsupported.dropped)


def parse_embedding_response(body: bytes, model: str = "") -> EmbeddingResponse:
    """A provider's embeddings list (float arrays or base64 strings) -> EmbeddingResponse;
    `model` names it when the body does not."""
    data = load_answer(body, "data")
    items = data.get("data")
    if not isinstance(items, list):
        raise provider_error("provider embedding response has no data")
    try:
        indexed: list[tuple[int, list[float]]] = []
        for position, item in enumerate(items):
            emb = item["embedding"]
            if isinstance(emb, str):
                vec = _decode_vector(emb)
            elif (floats := vector(emb)) is not None:
                vec = floats
            else:
                raise ValueError
            index = item.get("index")
            indexed.append((index if is_int(index) else position, vec))
    except SHAPE_ERRORS:
        raise provider_error("provider embedding response is malformed") from None
    indexed.sort(key=lambda p: p[0])
    named = data.get("model")
    usage = data.get("usage")
    return EmbeddingResponse(
        model=named if isinstance(named, str) and named else model,
        vectors=[v for _, v in indexed],
        usage=Usage(input_tokens=whole_number(usage.get("prompt_tokens"))) if isinstance(usage, dict) else None,
    )
