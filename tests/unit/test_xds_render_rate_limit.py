"""xds/render_rate_limit.py: Envoy's local_ratelimit guard on a listener."""

from __future__ import annotations

from pathlib import Path

from extproc.config.load import load_text
from extproc.xds.render_rate_limit import local_rate_limit_filter

PROVIDERS = "providers: [{name: m, kind: mock}]\nroutes: [{model: '*', provider: m}]\n"


def test_a_listener_without_a_guard_gets_no_filter_and_the_burst_defaults_to_the_rate() -> None:
    text = (
        PROVIDERS
        + """listeners:
  - {name: open, port: 10000}
  - {name: steady, port: 10001, local_rate_limit: {requests_per_s: 50}}
  - {name: bursty, port: 10002, local_rate_limit: {requests_per_s: 50, burst: 200}}
"""
    )
    open_, steady, bursty = load_text(text, {}, Path(".")).listeners
    assert local_rate_limit_filter(open_) is None
    steady_filter = local_rate_limit_filter(steady)
    assert steady_filter is not None
    typed = steady_filter["typed_config"]
    assert typed["token_bucket"] == {"max_tokens": 50, "tokens_per_fill": 50, "fill_interval": "1s"}
    assert typed["stat_prefix"] == "gateway_steady_local_rate_limit"
    assert {"append_action": "OVERWRITE_IF_EXISTS_OR_ADD", "header": {"key": "retry-after", "value": "1"}} in typed[
        "response_headers_to_add"
    ]
    bursty_filter = local_rate_limit_filter(bursty)
    assert bursty_filter is not None
    assert bursty_filter["typed_config"]["token_bucket"]["max_tokens"] == 200
