"""The validated gateway configuration as typed, immutable values. Each field is the declaration
of its option of gateway.yaml (extproc.declare): the JSON Schema, the documented defaults and the
loading of these objects come from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from extproc.auth.identity import AuthMethod
from extproc.auth.settings import AuthSettings
from extproc.config.route_model import BreakerPolicy, PoolMember, Resilience, RouteMatch, member_model
from extproc.config.tracing import TracingSettings
from extproc.config.traffic import CacheSettings, LimitSettings, StoreSettings
from extproc.declare import (
    HTTP_URL,
    Group,
    NonEmpty,
    NonNegative,
    Port,
    Positive,
    Schema,
    derived,
    inline,
    option,
    section,
)
from extproc.provider_kinds import KIND_NAMES
from extproc.spend.prices import Price, parse_prices
from extproc.spend.schema import PRICES_SCHEMA

ProviderKind = str  # one of extproc.provider_kinds.KIND_NAMES
Name = Annotated[str, Schema(pattern="^[a-z0-9][a-z0-9_-]*$", maxLength=60)]
# extproc.max_stream_line_bytes's default, declared here once (the SSE parser's own default reads it).
MAX_STREAM_LINE_BYTES = 4 * 1024 * 1024
CACHE_TTL_DESCRIPTION = (
    "cache TTL for answers through this route or provider, in seconds (0: never cached); a route's wins over "
    "its provider's; not set: cache.chat_ttl_s or cache.embeddings_ttl_s"
)
CacheTtl = Annotated[float, Schema(minimum=0)]


@section("What the provider supports; requests using more are adapted, dropped or rejected.")
@dataclass(frozen=True, slots=True)
class Capabilities:
    streaming: bool = option(
        True, description="the provider can stream; false: a client's stream is served from its whole answer"
    )
    tools: bool = option(
        True, description="the provider takes tool (function) definitions; false: tools are dropped or rejected"
    )
    images: bool = option(
        True, description="the provider takes images in user messages; false: images are dropped or rejected"
    )
    json_schema: bool = option(
        True,
        description="the provider follows a JSON Schema response format; false: the schema is dropped "
        "(plain JSON mode is asked instead) or rejected",
    )
    embeddings: bool = option(
        True, description="the provider has an embeddings API; false: embeddings requests for it are a 400"
    )
    max_tokens: Positive | None = option(
        None,
        description="the largest max_tokens the provider takes: a request asking for more is capped to it "
        "(not set: no cap)",
        examples=[8192],
    )


@section(
    groups={
        "tls": Group(
            "how Envoy checks an https:// provider's certificate; its host name (or IP) must always match the "
            "base_url's host"
        ),
        "azure": Group("Azure OpenAI: deployment paths, api-version and the api-key header", required=("api_version",)),
        "vertex": Group(
            "Google Vertex AI (kind vertex only): the project and location in every path, and the Google "
            "credentials the gateway mints OAuth2 access tokens from (docs/providers/vertex.md)",
            required=("project",),
        ),
        "mock": Group("the mock provider's answers (kind mock only)"),
        "bedrock": Group("AWS Bedrock Runtime: the region and the API (kind bedrock only)", required=("region",)),
        "aws_credentials": Group(
            "the AWS credentials Envoy signs Bedrock requests with (kind bedrock only)", required=("source",)
        ),
    }
)
@dataclass(frozen=True, slots=True)
class Provider:
    name: Name = option(
        description="unique name: routes and pools refer to it, metrics and logs show it, and "
        "GATEWAY_PROVIDER_<NAME>_API_KEY / _BASE_URL override its key and base_url",
        examples=["openai"],
    )
    kind: ProviderKind = option(
        schema={"enum": list(KIND_NAMES)},
        description="the provider's API (docs/providers/<kind>.md); mock answers locally, for tests",
    )
    base_url: str = option(
        "",
        unset=True,
        pattern=HTTP_URL,
        description="http(s) URL of the provider's API root (required except for kind mock). An http:// "
        "URL must point at loopback (127.0.0.0/8, ::1, localhost) unless allow_plaintext is true",
        examples=["https://api.openai.com/v1"],
    )  # without a trailing /
    allow_plaintext: bool = option(
        False,
        description="allow an http:// base_url to a host beyond loopback: prompts and the API key "
        "then cross the network unencrypted (only for a trusted network, e.g. a service mesh doing mTLS)",
    )
    tls_ca_file: str | None = option(
        None,
        key="tls.ca_file",
        description="PEM bundle of CAs to trust instead of the system's (a private CA); Envoy watches its "
        "directory: a bundle replaced there (a Kubernetes secret's update) is trusted for new "
        "connections without a restart",
        examples=["private-ca.pem"],
    )  # absolute once loaded; None: the system's CA bundle
    api_key_env: str | None = option(
        None,
        description="environment variable holding the key (openai, anthropic and gemini need a key)",
        examples=["OPENAI_API_KEY"],
    )
    api_key_file: str | None = option(
        None,
        description="file holding the key (k8s secret mount); a change to it is applied like a config reload",
        examples=["/run/secrets/openai/key"],
    )
    models: tuple[NonEmpty, ...] = option(
        (),
        description="model names served by this provider even when no route names them; listed by GET /v1/models",
        examples=[["gpt-4o-mini", "gpt-4o"]],
    )
    timeout_ms: Positive = option(
        600_000, description="the whole request, to the answer's last byte (Envoy's route timeout)"
    )
    first_byte_timeout_ms: Positive | None = option(
        None, description="until the answer starts (not set: no bound of its own)", examples=[30000]
    )
    idle_timeout_ms: Positive = option(120_000, description="between two pieces of the answer")
    capabilities: Capabilities = option(Capabilities())
    unsupported: Literal["drop", "reject"] = option(
        "drop",
        description="what to do with a feature the provider lacks: drop it (named in the "
        "x-gateway-dropped-features response header) or reject the request with a 400",
    )
    default_max_tokens: Positive = option(
        4096,
        description="max_tokens sent to an anthropic provider when the client gave none (its API requires one)",
    )
    cache_ttl_s: CacheTtl | None = option(None, description=CACHE_TTL_DESCRIPTION, examples=[600])
    anthropic_betas: tuple[NonEmpty, ...] | None = option(
        None,
        description="the only anthropic-beta values an Anthropic client's request takes to this bedrock or "
        "vertex provider (Claude on Bedrock and on Vertex AI refuse a beta they do not know with a 400); "
        "the others are dropped or rejected per `unsupported`. Not set: all go on; [] sends none",
        examples=[["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"]],
    )
    priced_as: NonEmpty | None = option(
        None,
        description="the key of `prices` (and of the default table) this provider's models are priced under; "
        "not set: its kind (`azure` for an Azure OpenAI provider, priced as `openai` unless `azure` is priced "
        "apart). E.g. `bedrock` or `vertex` for an openai-compatible proxy in front of them, or a name of "
        "your own to price one provider apart from others of its kind",
        examples=["bedrock"],
    )
    azure_api_version: str | None = option(
        None,
        key="azure.api_version",
        description="the api-version query parameter of every request",
        examples=["2024-10-21"],
    )
    azure_deployments: tuple[tuple[str, str], ...] = option(
        (),
        key="azure.deployments",
        schema={"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
        convert=lambda deployments: tuple(deployments.items()),
        documented={},
        description="the model each deployment serves ({deployment: model}), for prices: under a `usd` budget a "
        "listed deployment reserves its model's worst case and is refused while that model has no price; an "
        "unlisted one reserves nothing (its answer names the model, which is charged then)",
        examples=[{"prod-chat": "gpt-4o"}],
    )
    vertex_project: str | None = option(
        None, key="vertex.project", description="the Google Cloud project id", examples=["my-project"]
    )
    vertex_location: NonEmpty = option(
        "global",
        key="vertex.location",
        description="global (https://aiplatform.googleapis.com) or a region such as us-east5 "
        "(https://us-east5-aiplatform.googleapis.com); base_url, when given, replaces the host only",
        examples=["us-east5"],
    )
    vertex_credentials_file: str | None = option(
        None,
        key="vertex.credentials_file",
        description="a service-account key file (JSON) to mint access tokens with; not set: Application "
        "Default Credentials (workload identity through the metadata server on GKE, "
        "GOOGLE_APPLICATION_CREDENTIALS or gcloud's login on a laptop). Tokens are refreshed before they "
        "expire and handed to Envoy, never to the request path",
        examples=["/var/run/secrets/google/key.json"],
    )
    mock_latency_ms: NonNegative = option(
        0, key="mock.latency_ms", description="wait this long before answering (inside the ext_proc)"
    )
    mock_text: str = option(
        "This is the gateway's mock provider answering.",
        key="mock.text",
        description="the answer's text, cut to the request's max_tokens words",
    )
    bedrock_region: str | None = option(
        None,
        key="bedrock.region",
        description="the AWS region (required for kind bedrock): the SigV4 signing region, and the "
        "default base_url https://bedrock-runtime.<region>.amazonaws.com",
        examples=["us-east-1"],
    )
    bedrock_api: Literal["converse", "invoke", "auto"] = option(
        "auto",
        key="bedrock.api",
        description="Converse for every model family, InvokeModel (Claude's own Messages API: an "
        "Anthropic client keeps its features), or auto: invoke for Claude model ids "
        "(anthropic.*, us.anthropic.*, ...), converse otherwise",
    )
    aws_credentials_source: Literal["environment", "file", "web_identity", "instance_metadata", "chain"] | None = (
        option(
            None,
            key="aws_credentials.source",
            description="where Envoy reads the AWS credentials it signs Bedrock requests with (SigV4; the "
            "ext_proc never holds them): environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
            "AWS_SESSION_TOKEN of Envoy's process), file (a shared credentials file, re-read when "
            "replaced), web_identity (IRSA on EKS: role_arn and token_file), instance_metadata (EC2 instance profile), chain (Envoy's whole "
            "default chain). Kind bedrock takes this or a Bedrock API key (api_key_env / api_key_file)",
        )
    )
    aws_credentials_path: str | None = option(
        None,
        key="aws_credentials.path",
        description="the shared credentials file, for source file",
        examples=["/run/secrets/aws/credentials"],
    )  # absolute once loaded
    aws_credentials_profile: str | None = option(
        None, key="aws_credentials.profile", description="the file's profile (default: default)", examples=["bedrock"]
    )
    aws_role_arn: str | None = option(
        None,
        key="aws_credentials.role_arn",
        description="the role to assume, for source web_identity (IRSA: the service account's role)",
        examples=["arn:aws:iam::123456789012:role/gateway-bedrock"],
    )
    aws_web_identity_token_file: str | None = option(
        None,
        key="aws_credentials.token_file",
        description="the projected service-account token, for source web_identity; re-read when replaced",
        examples=["/var/run/secrets/eks.amazonaws.com/serviceaccount/token"],
    )
    api_key: str = derived("", repr=False)  # resolved secret: never logged

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


@section(
    "first match wins: the model (exact or glob) and every `match` condition must hold",
    oneOf=[{"required": ["provider"]}, {"required": ["pool"]}],
)
@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    match: RouteMatch = option(factory=RouteMatch)
    pool: Annotated[tuple[PoolMember, ...], Schema(minItems=2)] = option(
        (),
        unset=True,
        description="providers Envoy balances (weight) and fails over between (priority), in one request; "
        "needs a route name",
    )  # two or more providers: Envoy balances and fails over between them
    resilience: Resilience = inline(Resilience)
    name: Name = option(
        "",
        unset=True,
        description="names the route in limits, the cache and metrics (not set: its model pattern); required for a pool",
        examples=["chat"],
    )  # the model pattern when not given
    model: NonEmpty = option(
        description="model name or glob (gpt-*) the client asks for", examples=["gpt-*"]
    )  # exact name or glob
    provider: str = option(
        "", unset=True, description="the provider's name (give provider or pool)", examples=["openai"]
    )  # a pool's first member's when the route has a pool
    upstream_model: str | None = option(
        None, description="model name sent to the provider (not set: the client's)", examples=["gpt-4o-mini"]
    )
    auth: AuthMethod | None = option(
        None,
        description="this route's client auth, instead of its listener's: a credential is checked on the "
        "request headers under the widest method of the routes they leave possible (once the body is read "
        "when one of them is none), and the route taken admits only its own; not with match.clients or "
        "match.tenants",
    )  # overrides the listener's client auth for this route
    cache_ttl_s: CacheTtl | None = option(None, description=CACHE_TTL_DESCRIPTION, examples=[600])

    @property
    def cluster(self) -> str:
        return f"pool_{self.name}"

    def upstream_model_for(self, provider: str) -> str | None:
        """The model a provider is asked for on this route: its pool member's, else the route's
        `upstream_model`; None: the client's own."""
        return member_model(self.pool, provider, self.upstream_model)


@section(
    groups={
        "local_rate_limit": Group(
            "Envoy's local_ratelimit on this listener: a coarse guard in front of everything (per Envoy)",
            required=("requests_per_s",),
        ),
        "tls": Group(
            "serve HTTPS on this listener (HTTP/2 or HTTP/1.1, chosen by ALPN). Envoy watches the certificate's "
            "directory: files replaced there (a Kubernetes secret's update, a renewal) are served to new "
            "connections without a restart",
            required=("cert_file", "key_file"),
        ),
    }
)
@dataclass(frozen=True, slots=True)
class Listener:
    name: Name = option(
        required=False,
        description="names the listener, as in Envoy's stats (gateway_<name>.*); not set: listener<index>",
        examples=["main"],
    )
    address: str = option(
        documented="127.0.0.1",
        required=False,
        description="address Envoy listens on; beyond loopback, client auth (or an explicit auth: none) "
        "is required. The first listener's: GATEWAY_LISTEN_ADDRESS",
    )
    port: Port = option(
        description="port Envoy listens on. The first listener's: GATEWAY_LISTEN_PORT", examples=[10000]
    )
    auth: AuthMethod | None = option(
        None, description="this listener's client auth (not set: the top-level auth)"
    )  # own client auth method; None: the top-level one
    rate_limit_per_s: Positive | None = option(
        None,
        key="local_rate_limit.requests_per_s",
        description="requests per second, refilled evenly",
        examples=[500],
    )  # Envoy's local_ratelimit: a coarse guard per Envoy
    rate_limit_burst: Positive | None = option(
        None,
        key="local_rate_limit.burst",
        description="requests allowed at once (not set: requests_per_s)",
        examples=[1000],
    )
    tls_cert_file: str | None = option(
        None,
        key="tls.cert_file",
        description="PEM certificate chain presented to clients",
        examples=["certs/gateway.pem"],
    )  # absolute once loaded
    tls_key_file: str | None = option(
        None, key="tls.key_file", description="PEM private key of that certificate", examples=["certs/gateway-key.pem"]
    )  # absolute once loaded


def socket_path(grpc_address: str) -> str | None:
    """The path of a `unix:<path>` gRPC address; None for `<host>:<port>`."""
    return grpc_address.removeprefix("unix:") if grpc_address.startswith("unix:") else None


def host_and_port(grpc_address: str) -> tuple[str, int]:
    """The host (without IPv6 brackets) and port of a `<host>:<port>` gRPC address."""
    host, _, port = grpc_address.rpartition(":")
    return host.strip("[]"), int(port)


@section("the ext_proc service: its gRPC address, worker processes and admin HTTP server")
@dataclass(frozen=True, slots=True)
class ExtprocSettings:
    address: str = option(
        "127.0.0.1", description="address of the gRPC service Envoy calls, for `extproc serve` (restart to change)"
    )
    port: Port = option(
        50051,
        description="gRPC port of `extproc serve`; worker N listens on port + N. `extproc run` (Envoy on the same "
        "host) uses a 0600 socket among its run files instead, unless unix_socket is set "
        "(GATEWAY_EXTPROC_PORT; restart to change)",
    )
    unix_socket: str | None = option(
        None,
        description="serve gRPC on this Unix socket (mode 0600; worker N on <path>.N) instead of TCP "
        "(GATEWAY_EXTPROC_SOCKET; restart to change)",
        examples=["/run/gateway/extproc.sock"],
    )
    workers: Annotated[Positive, Schema(maximum=64)] = option(
        1,
        description="ext_proc processes; each is one endpoint of Envoy's ext_proc cluster. With "
        "limits or the cache, more than one needs store.backend redis (restart to change)",
    )
    admin_address: str = option(
        "127.0.0.1",
        description="address of the admin HTTP server: /healthz, /readyz, /metrics, /status, "
        "POST /reload (restart to change)",
    )
    admin_port: Port = option(9090, description="port of the admin HTTP server (GATEWAY_ADMIN_PORT; restart to change)")
    admin_token_env: str | None = option(
        None,
        description="environment variable holding the bearer token that GET /status and POST /reload then "
        "need from every peer, loopback included",
        examples=["GATEWAY_ADMIN_TOKEN"],
    )
    admin_token_file: str | None = option(
        None, description="file holding that token (k8s secret mount)", examples=["/run/secrets/gateway/admin-token"]
    )
    message_timeout_ms: Positive = option(
        30_000,
        description="how long Envoy waits for each answer of the ext_proc; slower is a 504 "
        "(gateway_timeout). Size it for the largest body accepted",
    )
    observe_streams: bool = option(
        True,
        description="a stream of the client's own API is read beside it (Envoy sends each chunk on "
        "without waiting for the ext_proc; a line over max_stream_line_bytes reaches the client and "
        "is not read); false: each chunk waits for the ext_proc, which passes it on in whole lines and "
        "ends the stream at an overlong line (restart to change)",
    )
    max_stream_line_bytes: Annotated[int, Schema(minimum=1024, maximum=1 << 30)] = option(
        MAX_STREAM_LINE_BYTES,
        description="the longest line (or SSE event) of a provider's stream the gateway reads (4 "
        "MiB): a longer one ends the client's stream with an in-band error in its format, so a "
        "provider cannot make the ext_proc hold and scan an endless line",
    )  # formats/sse.py
    grace_period_s: Annotated[float, Schema(minimum=0)] = option(
        10.0, description="on SIGTERM, how long requests in flight may take to finish"
    )
    busy_poll_us: Annotated[NonNegative, Schema(maximum=100000)] = option(
        500,
        description="after replying to a request's or an answer's headers, how long (µs) each ext_proc "
        "process keeps polling for the body due next instead of sleeping (it stops once the body arrives): "
        "at low concurrency each such message then skips a process wake-up (README, Performance), for up to "
        "this much CPU twice per request; 0 turns it off (restart to change)",
    )  # server/busy_poll.py
    admin_token: str = derived("", repr=False)  # resolved secret: never logged

    @property
    def on_tcp(self) -> bool:
        """Served on TCP ports: Envoy proves itself with a token there (xds/render_peer.py)."""
        return not self.unix_socket

    def grpc_addresses(self) -> list[str]:
        """One listening address per worker process: consecutive ports, or numbered sockets."""
        if self.unix_socket:
            return [f"unix:{self.unix_socket}" + (f".{i}" if i else "") for i in range(self.workers)]
        return [f"{self.address}:{self.port + i}" for i in range(self.workers)]


@section("the Envoy process: admin, rendered files, request size, client addresses, readiness")
@dataclass(frozen=True, slots=True)
class EnvoySettings:
    admin_port: Port = option(
        9901, description="port of Envoy's admin on 127.0.0.1 (GATEWAY_ENVOY_ADMIN_PORT; restart to change)"
    )
    admin_socket: str | None = option(
        None,
        description="serve Envoy's admin on this Unix socket (mode 0600) instead of 127.0.0.1:admin_port,"
        " so no other container of the pod can reach it (restart to change)",
        examples=["/run/gateway/envoy-admin.sock"],
    )  # admin on a Unix socket (0600) instead of loopback TCP
    xds_dir: str = option(
        "",
        unset=True,
        description="directory of the files Envoy watches (lds.yaml, cds.yaml, secrets/); the bootstrap "
        "is written beside it (GATEWAY_XDS_DIR; restart to change). Unset: .run/<pid>/xds, this "
        "instance's own, removed when it stops",
        examples=["/run/gateway/xds"],
    )  # empty: this instance's own, .run/<pid>/xds (config/load.py)
    max_request_bytes: Positive = option(
        32 * 1024 * 1024, description="the largest request body Envoy buffers (32 MiB); a larger one is a 413"
    )
    base_id: NonNegative | None = option(
        None,
        description="Envoy's --base-id, to run several Envoys on one host (not set: hot restart is "
        "disabled; restart to change)",
        examples=[1],
    )
    concurrency: Annotated[Positive, Schema(maximum=256)] | None = option(
        None,
        description="Envoy's worker threads when `extproc run` starts it (--concurrency; restart to "
        "change). Not set: one per core this process may use (its CPU affinity and cgroup quota; Envoy's "
        "own default counts every core of the host)",
        examples=[2],
    )  # None: one per usable core (extproc/cores.py)
    # Whose address is the client's: the peer's (True), or the one in X-Forwarded-For
    # `xff_num_trusted_hops` from the right, as set by proxies in front of Envoy.
    use_remote_address: bool = option(
        True,
        description="true: the client's address is the TCP peer's; false trusts "
        "X-Forwarded-For as sent, which only a proxy in front of Envoy should set",
    )
    xff_num_trusted_hops: Annotated[NonNegative, Schema(maximum=10)] = option(
        0, description="proxies in front of Envoy whose X-Forwarded-For entries are trusted"
    )
    # GET /ready for probes from outside the pod, on an extra address of the first listener (admin stays on loopback).
    ready_port: Port | None = option(
        None,
        description="port where Envoy answers GET /ready (200; 503 while draining) for a Kubernetes "
        "readiness probe, and Envoy's metrics (GET /stats/prometheus) and the ext_proc's (GET /metrics) for "
        "a scraper: an extra address of the first listener, so it is bound only with it; it serves "
        "nothing else (both admin servers can stay on loopback or a Unix socket). Off when absent",
        examples=[9902],
    )
    ready_address: str = option("127.0.0.1", description="address for ready_port (0.0.0.0 in a pod)")


_DEFAULT_LISTENERS = (Listener("main", "127.0.0.1", 10000),)


@section(title="gateway.yaml")
@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    log_level: Literal["debug", "info", "warning", "error"] = option(
        "info", description="level of the ext_proc's JSON log lines (GATEWAY_LOG_LEVEL overrides it)"
    )
    log_bodies: bool = option(
        False,
        description="debugging aid: the access line also carries the request's and the answer's bodies, "
        "with credentials (key-like fields) and images (base64 data, data: URLs) redacted; never in production",
    )  # the access line carries the bodies, redacted (a debugging aid)
    listeners: Annotated[tuple[Listener, ...], Schema(minItems=1)] = option(
        _DEFAULT_LISTENERS,
        documented=[{"name": "main", "port": 10000}],
        description="Envoy's listeners; each serves the OpenAI, Anthropic and Gemini APIs",
    )
    extproc: ExtprocSettings = option(ExtprocSettings())
    envoy: EnvoySettings = option(EnvoySettings())
    providers: Annotated[tuple[Provider, ...], Schema(minItems=1)] = option(
        description="the LLM providers the gateway calls"
    )
    routes: tuple[Route, ...] = option(
        (),
        description="rules picking a provider or pool per request, first match wins; a model no rule takes "
        "goes to the provider listing it in models, else it is a 404",
    )
    auth: AuthSettings = inline(AuthSettings)
    breakers: BreakerPolicy | None = option(None)  # None: no circuit breakers
    store: StoreSettings = option(factory=StoreSettings)
    limits: LimitSettings = option(factory=LimitSettings)
    cache: CacheSettings = option(factory=CacheSettings)
    prices: dict[str, tuple[Price, ...]] = option(
        factory=dict,
        schema=PRICES_SCHEMA,
        convert=parse_prices,
        documented={},
        description="USD per million tokens by provider kind (openai, anthropic, gemini, azure, mock, ...): "
        "entries of model names or globs with input, cached_input, cache_write, cache_write_1h, output and "
        "reasoning prices, searched before the default table, so they override or extend it "
        "(`extproc prices` prints the table in force; docs/spend.md)",
        examples=[{"openai": [{"models": ["gpt-4o-mini"], "input": 0.15, "cached_input": 0.075, "output": 0.6}]}],
    )
    tracing: TracingSettings | None = option(None)  # None: no traces
    text_hash: str = derived("")  # of the text it was loaded from: the version /status shows
    secret_files: tuple[str, ...] = derived(())  # absolute paths of the files secrets are read from (watched)

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
