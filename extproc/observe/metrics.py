"""Prometheus metrics of the ext_proc service.

Per request, the OpenTelemetry GenAI semantic conventions' metrics in Prometheus form
(`gen_ai.server.request.duration` -> `gen_ai_server_request_duration_seconds`, with the
conventions' bucket boundaries and attributes), plus the gateway's own labels: `route`,
`provider` (its configured name) and `client_api`. Every label value comes from the
configuration or a fixed set, never from a client (see `extproc.pipeline.access_log`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar, cast

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

M = TypeVar("M", Counter, Gauge, Histogram)

# The conventions' attributes, then the gateway's own labels; every per-request family starts with these.
GEN_AI_LABELS = (
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "route",
    "provider",
    "client_api",
)

REQUESTS = Counter(
    "gateway_requests_total",
    "Requests handled, by client API, route, provider, requested model and final status "
    "(client_closed: the client hung up before the answer ended).",
    ["client_api", "route", "provider", "model", "status"],
)
REQUEST_DURATION = Histogram(
    "gen_ai_server_request_duration_seconds",
    "Time from the request's headers to the answer's last byte; error_type is set on failures.",
    [*GEN_AI_LABELS, "error_type"],
    buckets=(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92),
)
TIME_TO_FIRST_TOKEN = Histogram(
    "gen_ai_server_time_to_first_token_seconds",
    "Time from the request's headers to the first piece of a streamed answer carrying content (successful streams).",
    GEN_AI_LABELS,
    buckets=(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
)
TIME_PER_OUTPUT_TOKEN = Histogram(
    "gen_ai_server_time_per_output_token_seconds",
    "Time per output token after the first, of successful streams.",
    GEN_AI_LABELS,
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5),
)
TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage",
    "Tokens per answer as the provider counted them, by type (input, output, cached, reasoning).",
    [*GEN_AI_LABELS, "gen_ai_token_type"],
    buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864),
)
FEATURES_DROPPED = Counter(
    "gateway_features_dropped_total",
    "Request features left out because the provider lacks them.",
    ["provider", "feature"],
)
ACTIVE_STREAMS = Gauge(
    "gateway_active_streams", "ext_proc gRPC streams in progress.", ["pass_"], multiprocess_mode="livesum"
)
CREDENTIAL_REFRESH_FAILURES = Counter(
    "gateway_credential_refresh_failures_total",
    "Failed refreshes of an access token the gateway mints for a provider (Vertex AI); the last token "
    "is kept until it expires.",
    ["provider"],
)
CREDENTIAL_REFRESHES = Counter(
    "gateway_credential_refreshes_total", "Access tokens minted for a provider (Vertex AI).", ["provider"]
)
CONFIG_RELOADS = Counter("gateway_config_reloads_total", "Config reload attempts.", ["result"])
KEYS_FILE_RELOADS = Counter(
    "gateway_keys_file_reloads_total", "API keys file reloads, by result (ok, error).", ["result"]
)
LIMIT_DECISIONS = Counter(
    "gateway_limit_decisions_total",
    "Rate-limit decisions, by rule, what was counted (requests, tokens, streams) and decision (allow, deny).",
    ["rule", "kind", "decision"],
)
CACHE_LOOKUPS = Counter(
    "gateway_cache_requests_total", "Response cache outcomes (hit, miss, bypass, refresh).", ["result"]
)
CACHE_BYTES = Counter(
    "gateway_cache_bytes_total", "Bytes of answers written to (stored) and served from (served) the cache.", ["op"]
)
STORE_ERRORS = Counter(
    "gateway_store_errors_total", "Operations the store (Redis) could not do, by operation.", ["operation"]
)
BUDGET_USED = Gauge(
    "gateway_budget_used_ratio",
    "Share of a USD budget spent in its current window (reservations in flight included), by budget (scope: "
    "the rule's name) and bucket (name: the values it is counted per, * for one bucket); 1 or more: refused.",
    ["scope", "name"],
    multiprocess_mode="mostrecent",
)
STORE_PENDING_WRITES = Gauge(
    "gateway_store_pending_writes",
    "Store writes made after an answer (token settles, stream slot releases, cache fills) and not done yet; "
    "a number that keeps growing means the store is slower than the traffic.",
    multiprocess_mode="livesum",
)
BREAKER_TRANSITIONS = Counter(
    "gateway_breaker_transitions_total", "Circuit breaker changes, by provider and new state.", ["provider", "to"]
)
BREAKER_REJECTIONS = Counter(
    "gateway_breaker_rejections_total", "Requests not sent to a provider whose breaker is open.", ["provider"]
)
# Read from the breakers when scraped, not set by the requests: with several ext_proc processes, a
# value each process set would be the state as that process last saw it (stale for a shared breaker
# it no longer meets) and a provider a reload removed would keep its series in the processes' files.
BREAKER_STATE = "gateway_breaker_state"
BREAKER_STATE_CODES = {"closed": 0, "half_open": 1, "open": 2}
BREAKER_STATE_HELP = (
    "Circuit breaker state of each configured provider when scraped: 0 closed, 1 half-open (the open time "
    "is over: the next request is a probe), 2 open. Read from the store (Redis: the breaker every process "
    "shares); with the memory store each ext_proc process keeps its own breakers and this is the main "
    "process's. No series while breakers are off or the store cannot be read."
)


class BreakerStates(Collector):
    """`gateway_breaker_state` for one scrape: the states read just before it."""

    def __init__(self, states: Mapping[str, int]) -> None:
        self._states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(BREAKER_STATE, BREAKER_STATE_HELP, labels=["provider"])
        for provider, code in sorted(self._states.items()):
            family.add_metric([provider], code)
        yield family


READ_WHEN_SCRAPED = (BREAKER_STATE,)  # the families above that no module-level metric object holds


RETRIES = Counter(
    "gateway_retries_total", "Attempts after the first (Envoy's retries), by provider tried.", ["provider"]
)
FAILOVERS = Counter(
    "gateway_failovers_total", "Pooled answers given by another provider than the first choice.", ["route", "provider"]
)
AUTH_FAILURES = Counter("gateway_auth_failures_total", "Client authentication failures, by reason.", ["reason"])
COST_USD = Counter(
    "gateway_cost_usd_total",
    "What answers cost in USD at the price table in force, from the providers' own usage.",
    ["route", "provider", "model", "tenant"],
)
COST_SAVED_USD = Counter(
    "gateway_cost_saved_usd_total",
    "What the answers served from the cache cost in USD when they were stored.",
    ["route", "provider", "model", "tenant"],
)
UNPRICED_REQUESTS = Counter(
    "gateway_unpriced_requests_total",
    "Answers of a model the price table has no price for (counted at 0 USD).",
    ["provider", "model"],
)
SPANS_DROPPED = Counter(
    "gateway_trace_spans_dropped_total",
    "Spans of the ext_proc never delivered to the trace collector, by reason: queue_full (the export queue "
    "was full: the collector is slow or down) or export_failed (the collector refused or did not answer).",
    ["reason"],
)


class RequestSeries:
    """The series of one label set of requests, looked up once: prometheus_client's `labels()`
    converts and locks on every call. Series a request may not need are made on first use."""

    __slots__ = ("_first_token", "_gen_ai", "_per_token", "_tokens", "duration", "requests")

    def __init__(self, key: tuple[str, ...]) -> None:
        *gen_ai, status, error_type = key
        _, _, model, _, route, provider, client_api = gen_ai
        self._gen_ai = gen_ai
        self.requests = REQUESTS.labels(client_api, route, provider, model, status)
        self.duration = REQUEST_DURATION.labels(*gen_ai, error_type)
        self._first_token: Histogram | None = None
        self._per_token: Histogram | None = None
        self._tokens: dict[str, Histogram] = {}

    def first_token(self) -> Histogram:
        if self._first_token is None:
            self._first_token = TIME_TO_FIRST_TOKEN.labels(*self._gen_ai)
        return self._first_token

    def per_token(self) -> Histogram:
        if self._per_token is None:
            self._per_token = TIME_PER_OUTPUT_TOKEN.labels(*self._gen_ai)
        return self._per_token

    def tokens(self, kind: str) -> Histogram:
        found = self._tokens.get(kind)
        if found is None:
            found = self._tokens[kind] = TOKEN_USAGE.labels(*self._gen_ai, kind)
        return found


_series: dict[tuple[str, ...], RequestSeries] = {}
_MAX_SERIES = 4096  # label values are bounded by the config; reloads may retire some


def request_series(key: tuple[str, ...]) -> RequestSeries:
    """`key`: the GEN_AI_LABELS values, then the status and the error type."""
    found = _series.get(key)
    if found is None:
        if len(_series) >= _MAX_SERIES:
            _series.clear()
        found = _series[key] = RequestSeries(key)
    return found


_children: dict[tuple[object, ...], Any] = {}


_MAX_FEATURE_LABELS = 256
_feature_labels: set[str] = set()


def feature_label(name: str) -> str:
    """A dropped feature's name as a metric label. Some names carry a word the client chose (an
    unknown block or tool type): only the first 256 distinct names get a series of their own, later
    ones count as "other", so no client can grow the metrics without bound."""
    if name in _feature_labels:
        return name
    if len(_feature_labels) >= _MAX_FEATURE_LABELS:
        return "other"
    _feature_labels.add(name)
    return name


def labelled(metric: M, *values: str) -> M:
    """`metric.labels(*values)` for a request's hot path, looked up once per label set (as `request_series`)."""
    key = (metric, *values)
    found = _children.get(key)
    if found is None:
        if len(_children) >= _MAX_SERIES:
            _children.clear()
        found = _children[key] = metric.labels(*values)
    return cast(M, found)
