"""Prometheus metrics of the ext_proc service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "gateway_requests_total",
    "Requests handled, by client API route, provider and final status.",
    ["route", "provider", "status"],
)
LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Time from request headers to response headers, by route and provider.",
    ["route", "provider", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
FEATURES_DROPPED = Counter(
    "gateway_features_dropped_total",
    "Request features left out because the provider lacks them.",
    ["provider", "feature"],
)
ACTIVE_STREAMS = Gauge(
    "gateway_active_streams", "ext_proc gRPC streams in progress.", ["pass_"], multiprocess_mode="livesum"
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
TOKENS = Counter(
    "gateway_tokens_total",
    "Tokens in answers, by provider and type (input, output, cached, reasoning).",
    ["provider", "type"],
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
BREAKER_TRANSITIONS = Counter(
    "gateway_breaker_transitions_total", "Circuit breaker changes, by provider and new state.", ["provider", "to"]
)
BREAKER_REJECTIONS = Counter(
    "gateway_breaker_rejections_total", "Requests not sent to a provider whose breaker is open.", ["provider"]
)
RETRIES = Counter(
    "gateway_retries_total", "Attempts after the first (Envoy's retries), by provider tried.", ["provider"]
)
FAILOVERS = Counter(
    "gateway_failovers_total", "Pooled answers given by another provider than the first choice.", ["route", "provider"]
)
AUTH_FAILURES = Counter("gateway_auth_failures_total", "Client authentication failures, by reason.", ["reason"])
