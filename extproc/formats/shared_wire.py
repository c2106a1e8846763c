"""Pieces the three wire objects share."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import GatewayError
from extproc.formats.input_bounds import dumps_request

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_SSE = "text/event-stream; charset=utf-8"


def rename_model(body: bytes, model: str, parsed: dict[str, Any] | None = None) -> bytes:
    """A JSON body naming another model; untouched when the name is already right. Written again,
    a value orjson read but cannot write (a field the gateway carries unread, nested over 254
    levels) is the client's 400. `parsed`: the body as read already (an 80 KB body is not read
    twice), changed in place."""
    data = orjson.loads(body) if parsed is None else parsed
    if data.get("model") == model:
        return body
    data["model"] = model
    return dumps_request(data)


def with_fields(
    body: bytes, model: str | None, fields: tuple[tuple[str, str], ...], parsed: dict[str, Any] | None = None
) -> bytes:
    """A client's JSON body for a provider that wants fields of its own set (`fields`) and the model
    named (`model`) or left out (None: the path names it), in the one pass a rename takes (`parsed`
    as for `rename_model`)."""
    data = orjson.loads(body) if parsed is None else parsed
    if model is None:
        data.pop("model", None)
    else:
        data["model"] = model
    data.update(fields)
    return dumps_request(data)


def no_embeddings(api: str) -> GatewayError:
    return GatewayError("invalid_request", f"the {api} API has no embeddings", param="model")
