"""Wire formats by name: each is one object with a client side and a provider side (`protocols.py`)."""

from __future__ import annotations

from collections.abc import Callable

from extproc.formats.anthropic.wire import WIRE as ANTHROPIC
from extproc.formats.bedrock import count, invoke
from extproc.formats.bedrock.wire import CONVERSE, INVOKE_ANTHROPIC
from extproc.formats.gemini.wire import WIRE as GEMINI
from extproc.formats.openai.wire import WIRE as OPENAI
from extproc.formats.protocols import ProviderFormat, WireFormat
from extproc.formats.responses.wire import WIRE as RESPONSES
from extproc.formats.vertex.wire import PREDICT

FORMATS: dict[str, WireFormat] = {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI, "responses": RESPONSES}
# Every provider side by its API's name (formats.endpoint.ProviderApi): the client APIs' own, and
# the APIs only a provider speaks (Bedrock's, Vertex AI's embeddings).
PROVIDER_APIS: dict[str, ProviderFormat] = {
    **FORMATS,
    "bedrock-converse": CONVERSE,
    "bedrock-invoke": INVOKE_ANTHROPIC,
    "vertex-predict": PREDICT,
}
# A client API spoken on another service (provider_kinds.PASSED_THROUGH): the client's own body made
# for it, with the client's `anthropic-beta` values (Claude on Bedrock takes them in the body)
OWN_BODY_ON: dict[str, Callable[[bytes, tuple[str, ...]], bytes]] = {"bedrock-invoke": invoke.passthrough_body}
# The same, for a count: the client's own count body as the other service's count request takes it
OWN_COUNT_ON: dict[str, Callable[[bytes, tuple[str, ...]], bytes]] = {"bedrock-invoke": count.own_count_body}
