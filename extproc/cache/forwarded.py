"""What a request's provider gets besides the canonical request, for the cache key.

A provider of another API is sent a body rendered from the canonical request alone. A
provider of the client's own API is sent the client's own body and its protocol headers: what
of those can differ between two requests of one canonical form is keyed too, the members of
the body the canonical request does not carry and the beta headers (`anthropic-beta`,
`openai-beta`: they switch features on), and the query string a kind passes on (Anthropic's
`?beta=true`). `anthropic-version` is not keyed: it picks the wire format's version, and the
gateway reads an answer of either version into the same canonical answer. A client API spoken
on another service for one model (an Anthropic client's own body to Claude on Bedrock's
InvokeModel) is passed through too, for that model only: its betas go in the body, so they are
keyed. A pool may be answered by any of its members, so all of them count.

The answer such a provider gives is the one the client asked for: where that holds parts a
canonical entry cannot (log probabilities, audio), the request is not replayable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from extproc.cache.key import Forwarded
from extproc.config.model import Provider
from extproc.formats.anthropic import carried as anthropic
from extproc.formats.canonical import ApiFeature
from extproc.formats.carried import Fields, uncarried
from extproc.formats.endpoint import Format
from extproc.formats.gemini import carried as gemini
from extproc.formats.openai import carried as openai
from extproc.formats.responses import carried as responses
from extproc.providers import ProviderKind, model_kind, serves

WIRE_VERSIONS = frozenset({"anthropic-version"})
# A client API on another service takes the client's betas in the body (Claude on Bedrock)
BODY_BETAS = ("anthropic-beta",)
SHAPES: dict[Format, Fields] = {
    "openai": openai.CHAT,
    "anthropic": anthropic.MESSAGES,
    "gemini": gemini.GENERATE_CONTENT,
    "responses": responses.RESPONSES,
}
ASKS_FOR_UNCARRIED_ANSWER: dict[Format, Callable[[dict[str, Any], list[ApiFeature]], bool]] = {
    "openai": openai.asks_for_uncarried_answer,
    "anthropic": anthropic.asks_for_uncarried_answer,
    "gemini": gemini.asks_for_uncarried_answer,
    "responses": responses.asks_for_uncarried_answer,
}


def forwarded(
    client: Format,
    answerers: Sequence[tuple[Provider, str]],
    headers: Mapping[str, str],
    source: dict[str, Any] | None,
    client_path: str = "",
    features: list[ApiFeature] | None = None,
) -> Forwarded:
    """`source`: the client's chat body as parsed (None for embeddings: always rendered);
    `client_path`: its path as it goes on (the gateway's own `key` parameter taken out);
    `features`: what its parser found that the canonical model cannot say (`ApiFeature`)."""
    same_api = False
    protocol: set[tuple[str, str]] = set()
    query = ""
    for provider, model in answerers:
        if serves(provider, client, model):
            kind = model_kind(provider, model)
            same_api = True
            keyed = _keyed(kind) if client == kind.format or client in kind.also_serves else BODY_BETAS
            protocol.update((name, value) for name in keyed if (value := headers.get(name)) is not None)
            if kind.passthrough_query:
                query = client_path.partition("?")[2]
    own, replayable = [], True
    if same_api and source is not None:  # the client's own body may be what the provider gets
        own = uncarried(source, SHAPES[client])
        replayable = not ASKS_FOR_UNCARRIED_ANSWER[client](source, features or [])
    sent = tuple((provider.name, model) for provider, model in answerers)
    return Forwarded(sent, tuple(sorted(protocol)) if protocol else (), own, query, replayable)


_KEYED: dict[str, tuple[str, ...]] = {}


def _keyed(kind: ProviderKind) -> tuple[str, ...]:
    """The kind's same-API headers that can change the answer (its beta headers)."""
    found = _KEYED.get(kind.name)
    if found is None:
        found = _KEYED[kind.name] = tuple(sorted(kind.passthrough_headers - WIRE_VERSIONS))
    return found
