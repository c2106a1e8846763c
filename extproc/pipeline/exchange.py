"""One request as the router pass sees it, from its headers to the last body chunk,
and what the current phase sends back to Envoy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode

from extproc.auth.identity import ANONYMOUS, AuthMethod, Identity
from extproc.config.model import Provider
from extproc.formats.assemble import StreamAssembler
from extproc.formats.bedrock.invoke import InvokeStreamToSSE
from extproc.formats.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage
from extproc.formats.endpoint import Endpoint, Format
from extproc.formats.protocols import StreamDecoder, StreamEncoder
from extproc.formats.sse import LineGate
from extproc.observe.bodies import BodyLog
from extproc.observe.logs import monotonic
from extproc.routing import Target
from extproc.spend.prices import Cost
from extproc.state import Snapshot
from extproc.store.base import Take

Headers = list[tuple[str, str]]
# How Envoy sends the answer's body (PhaseReply.response_body_mode): whole, or chunk by chunk.
BUFFERED = ProcessingMode.BUFFERED
STREAMED = ProcessingMode.STREAMED


@dataclass(slots=True)
class PhaseReply:
    """What the stages of one phase ask Envoy to change; turned into one ProcessingResponse."""

    set_headers: Headers = field(default_factory=list)
    remove_headers: list[str] = field(default_factory=list)
    body: bytes | None = None  # None: the body goes on unchanged
    clear_route_cache: bool = False
    response_body_mode: int | None = None  # a per-request override of how the answer's body is sent
    request_metadata: dict[str, str | bool | float] | None = None  # facts for the upstream pass (a pool's attempts)
    # Reading that cannot change this reply (a same-API stream's chunk): run once the reply has left,
    # so it is off the request's path. It must not raise.
    after_reply: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class LocalAnswer:
    """An answer the gateway gives itself; no provider sees the request."""

    status: int
    body: bytes
    headers: Headers = field(default_factory=list)


@dataclass(slots=True)
class Exchange:
    snapshot: Snapshot  # the configuration this request started with, kept to its end
    listener: str = ""
    started: float = field(default_factory=monotonic)
    # request headers
    request_id: str = ""
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    header_bytes: int = 0  # the request headers' size as Envoy sent them
    client_address: str = ""  # the peer Envoy trusts (use_remote_address, xff_num_trusted_hops), never raw XFF
    endpoint: Endpoint | None = None
    error_format: Format = "openai"
    identity: Identity = ANONYMOUS
    auth_method: AuthMethod | None = None  # the method the identity was checked under
    # request body
    request: ChatRequest | EmbeddingRequest | None = None  # kept while the answer needs translating
    model: str = ""
    request_bytes: int = 0  # the request body's size: a prompt estimate when the provider counts nothing
    stream: bool = False  # the client asked for a stream
    target: Target | None = None
    provider_model: str = ""  # the model the provider is asked for (a pool's: the answering member's)
    passthrough: bool = False  # client and provider speak the same API: the client's bytes go on
    stream_from_whole: bool = False  # the client streams, the provider cannot
    dropped: list[str] = field(default_factory=list)  # features the provider lacks, named to the client
    # response
    answered_by: Provider | None = None  # a pool's provider that answered (Envoy says which)
    attempts: int = 1  # Envoy's tries of the provider (a pool retries)
    status: int = 0  # what the client got
    answered: bool = False  # the answer ended, or the gateway gave its own; not at the end: the client hung up
    first_output: float = 0.0  # when the first piece of a stream carrying content went by (monotonic)
    provider_status: int = 0
    error_body: bool = False  # the provider's answer is an error to map
    decoder: StreamDecoder | None = None
    encoder: StreamEncoder | None = None
    # A same-API stream in another framing (Claude's events in Bedrock's event-stream frames): made
    # the client's own SSE before anything else reads it
    reframe: InvokeStreamToSSE | None = None
    error_type: str = ""  # the provider's own name for its error, from a header (Bedrock's x-amzn-errortype)
    counted_input: int | None = None  # the input tokens the provider's answer header says it counted
    line_gate: LineGate | None = None  # a same-API SSE stream goes on in whole lines (formats/sse.py)
    observed: int = 0  # set: a same-API stream the observer reads under this key (server/observer_pass.py)
    stream_ended: bool = False  # an in-band error already closed the client's stream
    # what the answer was, read from every answer (translated or not)
    assembler: StreamAssembler | None = None  # a stream's events, gathered
    answer: ChatResponse | EmbeddingResponse | None = None  # a complete, successful answer
    usage: Usage | None = None  # the provider's own count
    cost: Cost | None = None  # what the answer cost in USD, once known (pipeline/spend.py)
    saved_usd: float = 0.0  # a cache hit: what the answer cost when it was stored
    # limits and cache
    input_estimate: int = 0  # tokens the request was estimated at
    reserved: list[Take] = field(default_factory=list)  # token buckets charged with the estimate
    reserved_usd: list[Take] = field(default_factory=list)  # budgets charged with the worst case, micro-USD
    slots: list[str] = field(default_factory=list)  # concurrent-stream slots held
    slot_holder: str = ""  # whom the slots are held for: an id the gateway made, unique to this request
    limit_headers: Headers = field(default_factory=list)  # x-ratelimit-* for the answer
    cache_key: str = ""  # set: the answer is to be stored under it
    cache_ttl_s: float = 0.0
    cache_status: str = ""  # HIT | MISS | BYPASS | REFRESH; empty: the cache does not apply
    bodies: BodyLog | None = None  # kept for the access line when `log_bodies` asks

    @property
    def provider(self) -> Provider | None:
        if self.answered_by is not None:
            return self.answered_by
        return self.target.provider if self.target else None

    @property
    def provider_name(self) -> str:
        provider = self.provider
        return provider.name if provider else ""

    @property
    def route(self) -> str:
        return self.target.route if self.target else ""
