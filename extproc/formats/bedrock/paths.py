"""Bedrock Runtime paths: `/model/{modelId}/{operation}`, the model id one percent-encoded segment."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote

from extproc.formats.client_errors import invalid

Operation = Literal["converse", "converse-stream", "invoke", "invoke-with-response-stream"]

# Claude's ids, bare, behind a cross-region prefix (us., eu., global.) or at the end of an ARN
# (foundation-model/anthropic.claude-..., inference-profile/us.anthropic.claude-...).
_ANTHROPIC_ID = re.compile(r"(?:^|[./])anthropic\.")
_NOVA_ID = re.compile(r"(?:^|[./])amazon\.nova-")


def model_path(model_id: str, operation: Operation) -> str:
    """botocore's form: the whole id percent-encoded, so `:` (us.anthropic.claude-...-v1:0) and the
    `/` of an inference-profile ARN stay inside the one segment (a raw `/` would be a new segment)."""
    if model_id in ("", ".", ".."):
        raise invalid("a Bedrock model id cannot be empty, '.' or '..'", "model")
    return f"/model/{quote(model_id, safe='')}/{operation}"


def converse_path(model_id: str, stream: bool) -> str:
    return model_path(model_id, "converse-stream" if stream else "converse")


def invoke_path(model_id: str, stream: bool) -> str:
    return model_path(model_id, "invoke-with-response-stream" if stream else "invoke")


def is_anthropic(model_id: str) -> bool:
    """Claude: Anthropic's own request fields (thinking, top_k) go in additionalModelRequestFields.
    An application inference profile's ARN names no model: it is not recognised."""
    return _ANTHROPIC_ID.search(model_id) is not None


def is_nova(model_id: str) -> bool:
    """Amazon Nova: top_k goes in additionalModelRequestFields.inferenceConfig.topK."""
    return _NOVA_ID.search(model_id) is not None
