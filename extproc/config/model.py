"""The validated gateway configuration as typed, immutable values."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from extproc.auth.identity import AuthMethod
from extproc.auth.settings import AuthSettings
from extproc.config.route_model import BreakerPolicy, PoolMember, Resilience, RouteMatch
from extproc.config.schema import MAX_STREAM_LINE_BYTES
from extproc.config.traffic import CacheSettings, LimitSettings, StoreSettings

ProviderKind = str  # one of schema.PROVIDER_KINDS


@dataclass(frozen=True, slots=True)
class Capabilities:
    streaming: bool = True
    tools: bool = True
    images: bool = True
    json_schema: bool = True
    embeddings: bool = True
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    kind: ProviderKind
    base_url: str = ""
    api_key: str = field(default="", repr=False)  # resolved secret: never logged
    models: tuple[str, ...] = ()
    timeout_ms: int = 600_000
    idle_timeout_ms: int = 120_000
    first_byte_timeout_ms: int | None = None
    capabilities: Capabilities = Capabilities()
    unsupported: str = "drop"
    default_max_tokens: int = 4096
    azure_api_version: str | None = None
    mock_latency_ms: int = 0
    mock_text: str = "This is the gateway's mock provider answering."
    tls_ca_file: str | None = None  # None: the system's CA bundle
    allow_plaintext: bool = False
    cache_ttl_s: float | None = None  # None: the cache's default for the request type

    @property
    def cluster(self) -> str:
        return f"provider_{self.name}"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def tls(self) -> bool:
        return urlsplit(self.base_url).scheme == "https"

    @property
    def authority(self) -> str:
        parts = urlsplit(self.base_url)
        return parts.netloc.rpartition("@")[2]

    @property
    def base_path(self) -> str:
        return urlsplit(self.base_url).path.rstrip("/")


@dataclass(frozen=True, slots=True)
class Route:
    model: str  # exact name or glob
    provider: str
    upstream_model: str | None = None
    auth: str | None = None  # overrides the listener's client auth for this route
    name: str = ""  # names the route in limits and the cache; the model pattern when not given
    cache_ttl_s: float | None = None
    match: RouteMatch = field(default_factory=RouteMatch)
    pool: tuple[PoolMember, ...] = ()  # two or more providers: Envoy balances and fails over between them
    resilience: Resilience = field(default_factory=Resilience)

    @property
    def cluster(self) -> str:
        return f"pool_{self.name}"

    def upstream_model_for(self, provider: str) -> str | None:
        """The model a provider is asked for on this route: its pool member's, else the route's
        `upstream_model`; None: the client's own."""
        member = next((m for m in self.pool if m.provider == provider), None)
        return (member.model if member else None) or self.upstream_model


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    address: str
    port: int
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    auth: str | None = None  # own client auth method; None: the top-level one
    rate_limit_per_s: int | None = None  # Envoy's local_ratelimit: a coarse guard per Envoy
    rate_limit_burst: int | None = None


def socket_path(grpc_address: str) -> str | None:
    """The path of a `unix:<path>` gRPC address; None for `<host>:<port>`."""
    return grpc_address.removeprefix("unix:") if grpc_address.startswith("unix:") else None


def host_and_port(grpc_address: str) -> tuple[str, int]:
    """The host (without IPv6 brackets) and port of a `<host>:<port>` gRPC address."""
    host, _, port = grpc_address.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class ExtprocSettings:
    address: str = "127.0.0.1"
    port: int = 50051
    unix_socket: str | None = None
    workers: int = 1
    admin_address: str = "127.0.0.1"
    admin_port: int = 9090
    admin_token: str = field(default="", repr=False)  # resolved secret: never logged
    message_timeout_ms: int = 30_000
    max_stream_line_bytes: int = MAX_STREAM_LINE_BYTES  # formats/sse.py
    grace_period_s: float = 10.0
    busy_poll_us: int = 500  # server/busy_poll.py

    @property
    def on_tcp(self) -> bool:
        """Served on TCP ports: Envoy proves itself with a token there (xds/render_peer.py)."""
        return not self.unix_socket

    def grpc_addresses(self) -> list[str]:
        """One listening address per worker process: consecutive ports, or numbered sockets."""
        if self.unix_socket:
            return [f"unix:{self.unix_socket}" + (f".{i}" if i else "") for i in range(self.workers)]
        return [f"{self.address}:{self.port + i}" for i in range(self.workers)]


@dataclass(frozen=True, slots=True)
class EnvoySettings:
    admin_port: int = 9901
    admin_socket: str | None = None  # admin on a Unix socket (0600) instead of loopback TCP
    xds_dir: str = ""  # empty: this instance's own, .run/<pid>/xds (config/load.py)
    max_request_bytes: int = 32 * 1024 * 1024
    base_id: int | None = None
    concurrency: int | None = None  # Envoy's worker threads; None: one per usable core (extproc/cores.py)
    # Whose address is the client's: the peer's (True), or the one in X-Forwarded-For
    # `xff_num_trusted_hops` from the right, as set by proxies in front of Envoy.
    use_remote_address: bool = True
    xff_num_trusted_hops: int = 0
    # GET /ready for probes from outside the pod, on an extra address of the first listener (admin stays on loopback).
    ready_port: int | None = None
    ready_address: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    providers: tuple[Provider, ...]
    routes: tuple[Route, ...] = ()
    listeners: tuple[Listener, ...] = (Listener("main", "127.0.0.1", 10000),)
    extproc: ExtprocSettings = ExtprocSettings()
    envoy: EnvoySettings = EnvoySettings()
    log_level: str = "info"
    log_bodies: bool = False  # the access line carries the bodies, redacted (a debugging aid)
    auth: AuthSettings = field(default_factory=AuthSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    breakers: BreakerPolicy | None = None  # None: no circuit breakers
    text_hash: str = ""  # of the text it was loaded from: the version /status shows
    secret_files: tuple[str, ...] = ()  # absolute paths of the files secrets are read from (watched)

    def listener_auth(self, name: str) -> AuthMethod:
        """The client auth method in force on listener `name` (KeyError for an unknown listener)."""
        for listener in self.listeners:
            if listener.name == name:
                return self.auth.effective_method(listener.auth)
        raise KeyError(name)

    def provider(self, name: str) -> Provider | None:
        for provider in self.providers:
            if provider.name == name:
                return provider
        return None

    def route(self, name: str) -> Route | None:
        for route in self.routes:
            if route.name == name:
                return route
        return None
