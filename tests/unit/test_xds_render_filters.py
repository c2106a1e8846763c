"""xds/render_filters.py: the ext_proc filter of the router pass (listener) and of the upstream pass
(a pool's cluster)."""

from __future__ import annotations

from pathlib import Path

from extproc.config.load import load_text
from extproc.config.model import GatewayConfig
from extproc.contract import LISTENER_METADATA_KEY, PASS_METADATA_KEY, PROVIDER_ATTRIBUTE, REQUEST_METADATA_NAMESPACE
from extproc.xds.render_filters import EXT_PROC_FILTER, enable_ext_proc_per_route, ext_proc_filter, ms

PROVIDERS = "providers: [{name: m, kind: mock}]\nroutes: [{model: '*', provider: m}]\n"


def config(extra: str = "") -> GatewayConfig:
    return load_text(PROVIDERS + extra, {}, Path("."))


def test_milliseconds_are_written_as_envoy_durations() -> None:
    assert ms(30_000) == "30s"
    assert ms(1500) == "1.5s"
    assert ms(50) == "0.05s"


def test_the_router_pass_filter_is_off_until_a_route_turns_it_on_and_names_its_listener() -> None:
    rendered = ext_proc_filter(config(), upstream=False, listener="public")
    assert rendered["disabled"] is True  # a codec error matches no route: Envoy's own 431/400 stays
    typed = rendered["typed_config"]
    assert typed["processing_mode"]["response_header_mode"] == "SEND"
    assert {"key": LISTENER_METADATA_KEY, "value": "public"} in typed["grpc_service"]["initial_metadata"]
    assert typed["metadata_options"] == {"receiving_namespaces": {"untyped": [REQUEST_METADATA_NAMESPACE]}}
    assert typed["failure_mode_allow"] is False
    assert enable_ext_proc_per_route() == {
        EXT_PROC_FILTER: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": {}}
    }


def test_the_upstream_pass_reads_the_attempt_provider_and_asks_for_answers_only_with_breakers() -> None:
    plain = ext_proc_filter(config(), upstream=True)
    assert "disabled" not in plain
    typed = plain["typed_config"]
    assert typed["processing_mode"]["response_header_mode"] == "SKIP"
    assert typed["request_attributes"] == [PROVIDER_ATTRIBUTE]
    assert typed["metadata_options"] == {"forwarding_namespaces": {"untyped": [REQUEST_METADATA_NAMESPACE]}}
    assert {"key": PASS_METADATA_KEY, "value": "upstream"} in typed["grpc_service"]["initial_metadata"]
    with_breakers = ext_proc_filter(config("breakers: {}\n"), upstream=True)["typed_config"]
    assert with_breakers["processing_mode"]["response_header_mode"] == "SEND"


def test_every_timeout_of_the_filter_is_the_configured_message_timeout() -> None:
    typed = ext_proc_filter(config("extproc: {message_timeout_ms: 2500}\n"), upstream=False)["typed_config"]
    assert typed["grpc_service"]["timeout"] == typed["message_timeout"] == typed["max_message_timeout"] == "2.5s"
