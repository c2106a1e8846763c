"""Envoy's local_ratelimit on a listener: a coarse guard in front of everything.

It refuses a flood in Envoy before any request reaches the ext_proc (per Envoy
process, not shared across replicas: the precise, shared limits are the ext_proc's).
Its 429 is rewritten into the client's error format by the local reply config.
"""

from __future__ import annotations

from typing import Any

from extproc.config.model import Listener

LOCAL_RATE_LIMITED = "local_rate_limited"  # Envoy's response code details for its refusals
_TYPE = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
_ALWAYS = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "gw_local_rate_limit"}


def local_rate_limit_filter(listener: Listener) -> dict[str, Any] | None:
    if listener.rate_limit_per_s is None:
        return None
    per_s = listener.rate_limit_per_s
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": _TYPE,
            "stat_prefix": f"gateway_{listener.name}_local_rate_limit",
            "token_bucket": {
                "max_tokens": listener.rate_limit_burst or per_s,
                "tokens_per_fill": per_s,
                "fill_interval": "1s",
            },
            "filter_enabled": _ALWAYS,
            "filter_enforced": _ALWAYS,
            "response_headers_to_add": [
                {"append_action": "OVERWRITE_IF_EXISTS_OR_ADD", "header": {"key": "retry-after", "value": "1"}}
            ],
        },
    }
