"""Provider side, embeddings on Bedrock's InvokeModel: the canonical request -> the model family's
own body, and its answer -> the canonical embeddings.

Amazon Titan Text Embeddings takes one text per call (`inputText`; v2 also `dimensions` of 256, 512
or 1024 and `normalize`) and answers `{"embedding": [...], "inputTextTokenCount": N}`. Cohere Embed
takes up to 96 `texts` with an `input_type` and answers `{"embeddings": [[...]] | {"float": [[...]]},
"texts": [...], "response_type": ...}` with no token count in the body: Bedrock's
`x-amzn-bedrock-input-token-count` header carries it (read by the answer stage), and the gateway
estimates when it is absent.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from extproc.formats.answer_values import answer_object, count, provider_error, vector
from extproc.formats.assemble import CHARS_PER_TOKEN
from extproc.formats.canonical import EmbeddingRequest, EmbeddingResponse, Usage
from extproc.formats.client_errors import invalid
from extproc.formats.render_options import RenderedRequest, RenderOptions, Unsupported
from extproc.provider_kinds import BEDROCK_COHERE_EMBED, BEDROCK_TITAN_EMBED

_COHERE_V4 = re.compile(r"(?:^|[./])cohere\.embed-v4")

TITAN_V2_DIMENSIONS = (256, 512, 1024)
COHERE_V4_DIMENSIONS = (256, 512, 1024, 1536)
COHERE_MAX_TEXTS = 96  # Cohere Embed's own limit on one call
# Gemini's taskType -> Cohere's input_type; an OpenAI client names none: stored documents
_COHERE_INPUT_TYPES = {
    "RETRIEVAL_QUERY": "search_query",
    "QUESTION_ANSWERING": "search_query",
    "FACT_VERIFICATION": "search_query",
    "CODE_RETRIEVAL_QUERY": "search_query",
    "RETRIEVAL_DOCUMENT": "search_document",
    "CLASSIFICATION": "classification",
    "CLUSTERING": "clustering",
}


def render_request(req: EmbeddingRequest, options: RenderOptions) -> RenderedRequest:
    """The InvokeModel body for `options.model` (one the bedrock kind's record `embeds`)."""
    unsupported = Unsupported(options.unsupported)
    if (titan := BEDROCK_TITAN_EMBED.search(options.model)) is not None:
        body = _titan(req, int(titan.group(1)), unsupported)
    elif BEDROCK_COHERE_EMBED.search(options.model) is not None:
        body = _cohere(req, _COHERE_V4.search(options.model) is not None, unsupported)
    else:
        raise invalid(f"Bedrock model {options.model} is not an embeddings model", "model")
    return RenderedRequest(orjson.dumps(body), unsupported.dropped)


def _titan(req: EmbeddingRequest, version: int, unsupported: Unsupported) -> dict[str, Any]:
    if len(req.inputs) != 1:
        # one request cannot become several InvokeModel calls: Envoy sends exactly one
        raise invalid(
            f"Amazon Titan Text Embeddings takes one input per request, and this request has {len(req.inputs)}: "
            "send each input in its own request",
            "input",
        )
    body: dict[str, Any] = {"inputText": req.inputs[0]}
    if req.task_type is not None:
        unsupported.lacks("task_type")
    if version < 2:  # v1 takes inputText alone (1,536 dimensions)
        if req.dimensions is not None:
            unsupported.lacks("dimensions")
        return body
    if req.dimensions is not None:
        if req.dimensions not in TITAN_V2_DIMENSIONS:
            raise invalid(
                f"Amazon Titan Text Embeddings v2 takes dimensions of 256, 512 or 1024, not {req.dimensions}",
                "dimensions",
            )
        body["dimensions"] = req.dimensions
    body["normalize"] = True  # unit vectors, as OpenAI's and Gemini's embeddings are
    return body


def _cohere(req: EmbeddingRequest, v4: bool, unsupported: Unsupported) -> dict[str, Any]:
    if len(req.inputs) > COHERE_MAX_TEXTS:
        raise invalid(
            f"Cohere Embed takes at most {COHERE_MAX_TEXTS} inputs per request, and this request has {len(req.inputs)}",
            "input",
        )
    input_type = _COHERE_INPUT_TYPES.get(req.task_type or "", "search_document")
    if req.task_type is not None and req.task_type not in _COHERE_INPUT_TYPES:
        unsupported.lacks("task_type")
    body: dict[str, Any] = {"texts": req.inputs, "input_type": input_type, "embedding_types": ["float"]}
    if req.dimensions is not None:
        if not v4:
            unsupported.lacks("dimensions")
        elif req.dimensions not in COHERE_V4_DIMENSIONS:
            raise invalid(
                f"Cohere Embed v4 takes dimensions of 256, 512, 1024 or 1536, not {req.dimensions}", "dimensions"
            )
        else:
            body["output_dimension"] = req.dimensions
    return body


def parse_response(body: bytes, model: str = "") -> EmbeddingResponse:
    """Titan's or Cohere's answer (told apart by their shapes) -> the canonical embeddings."""
    data = answer_object(body)
    if "embedding" in data:  # Titan
        vector = _vector(data["embedding"])
        return EmbeddingResponse(model, [vector], Usage(input_tokens=count(data, "inputTextTokenCount")))
    embeddings = data.get("embeddings")
    if isinstance(embeddings, dict):  # embeddings_by_type
        embeddings = embeddings.get("float")
    if not isinstance(embeddings, list):
        raise provider_error("the provider returned no embeddings")
    vectors = [_vector(item) for item in embeddings]
    texts = data.get("texts")
    estimate = (
        sum(max(1, len(t) // CHARS_PER_TOKEN) for t in texts if isinstance(t, str)) if isinstance(texts, list) else 0
    )
    return EmbeddingResponse(model, vectors, Usage(input_tokens=estimate))


def _vector(value: Any) -> list[float]:
    if (floats := vector(value)) is None:
        raise provider_error("the provider returned a malformed embedding")
    return floats
