"""xds/render_listener.py: a gateway listener: its address, TLS, the HTTP connection manager with
the guard, the router pass and the router, and one route per provider cluster and pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from extproc.config.load import load_text
from extproc.config.model import GatewayConfig
from extproc.contract import OBSERVE_HEADER, PROVIDER_HEADER, REQUEST_METADATA_NAMESPACE, ROUTE_HEADER
from extproc.xds.render_filters import EXT_PROC_FILTER, OBSERVER_CLUSTER, OBSERVER_FILTER, UNMARK_FILTER
from extproc.xds.render_listener import gateway_listener


def config(tmp_path: Path) -> GatewayConfig:
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text(name)
    text = f"""
providers:
  - {{name: oa, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K, first_byte_timeout_ms: 3000}}
  - {{name: an, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K, timeout_ms: 90000}}
  - {{name: m, kind: mock}}
routes:
  - {{model: "gpt-*", provider: oa}}
  - {{name: both, model: "*", pool: [{{provider: oa}}, {{provider: an}}]}}
listeners:
  - {{name: public, address: 0.0.0.0, port: 10443, auth: none, local_rate_limit: {{requests_per_s: 10}},
     tls: {{cert_file: {tmp_path}/cert.pem, key_file: {tmp_path}/key.pem}}}}
  - {{name: inner, port: 10000}}
envoy: {{ready_port: 9902}}
"""
    return load_text(text, {"K": "sk"}, tmp_path)


def hcm_of(listener: dict[str, Any]) -> dict[str, Any]:
    gateway_chain = listener["filter_chains"][-1]
    return gateway_chain["filters"][0]["typed_config"]


def test_a_listener_binds_its_address_and_only_a_tls_one_gets_a_certificate(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    public, inner = (gateway_listener(loaded, i, tmp_path / "secrets") for i in range(2))
    assert public["name"] == "listener_public"
    assert public["address"] == {"socket_address": {"address": "0.0.0.0", "port_value": 10443}}
    assert "transport_socket" in public["filter_chains"][-1]
    assert "transport_socket" not in inner["filter_chains"][-1]
    assert "additional_addresses" in public and "additional_addresses" not in inner  # the ready port: first only
    assert hcm_of(public)["stat_prefix"] == "gateway_public"


def test_the_guard_runs_before_the_router_pass_which_runs_before_the_router(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    public, inner = (hcm_of(gateway_listener(loaded, i, None)) for i in range(2))
    passes = [UNMARK_FILTER, OBSERVER_FILTER, EXT_PROC_FILTER, "envoy.filters.http.router"]
    assert [f["name"] for f in public["http_filters"]] == ["envoy.filters.http.local_ratelimit", *passes]
    assert [f["name"] for f in inner["http_filters"]] == passes
    assert public["local_reply_config"]["mappers"]  # Envoy's own errors in the client's format


def test_the_observer_reads_only_marked_answers_without_holding_them_and_the_mark_never_leaves(
    tmp_path: Path,
) -> None:
    filters = {
        f["name"]: f["typed_config"] for f in hcm_of(gateway_listener(config(tmp_path), 1, None))["http_filters"]
    }
    matched = filters[OBSERVER_FILTER]
    observer = matched["extension_config"]["typed_config"]
    assert observer["observability_mode"] is True and observer["failure_mode_allow"] is True
    assert observer["processing_mode"]["response_body_mode"] == "STREAMED"
    assert {observer["processing_mode"][m] for m in ("request_header_mode", "response_header_mode")} == {"SKIP"}
    assert observer["metadata_options"]["forwarding_namespaces"]["untyped"] == [REQUEST_METADATA_NAMESPACE]
    (rule,) = matched["xds_matcher"]["matcher_list"]["matchers"]
    unmarked = rule["predicate"]["not_matcher"]["single_predicate"]
    assert unmarked["input"]["typed_config"]["header_name"] == OBSERVE_HEADER
    assert unmarked["value_match"] == {"exact": "0"}  # worker 0's mark
    assert rule["on_match"]["action"]["typed_config"]["@type"].endswith("SkipFilter")
    assert filters[UNMARK_FILTER]["mutations"]["response_mutations"] == [{"remove": OBSERVE_HEADER}]


def test_each_worker_has_an_observer_reading_only_its_own_marks_and_none_when_turned_off(tmp_path: Path) -> None:
    loaded = load_text("providers: [{name: m, kind: mock}]\nextproc: {workers: 3, port: 50100}\n", {}, tmp_path)
    filters = hcm_of(gateway_listener(loaded, 0, None))["http_filters"]
    observers = {f["name"]: f["typed_config"] for f in filters if f["name"].startswith(OBSERVER_FILTER)}
    assert list(observers) == [OBSERVER_FILTER, f"{OBSERVER_FILTER}_1", f"{OBSERVER_FILTER}_2"]
    for worker, matched in enumerate(observers.values()):
        (rule,) = matched["xds_matcher"]["matcher_list"]["matchers"]
        assert rule["predicate"]["not_matcher"]["single_predicate"]["value_match"] == {"exact": str(worker)}
        cluster = matched["extension_config"]["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"]
        assert cluster == (OBSERVER_CLUSTER if worker == 0 else f"{OBSERVER_CLUSTER}_{worker}")
    off = load_text("providers: [{name: m, kind: mock}]\nextproc: {observe_streams: false}\n", {}, tmp_path)
    names = [f["name"] for f in hcm_of(gateway_listener(off, 0, None))["http_filters"]]
    assert names == [EXT_PROC_FILTER, "envoy.filters.http.router"]


def test_each_provider_and_pool_has_a_route_by_cluster_header_and_the_rest_is_a_404(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    host = hcm_of(gateway_listener(loaded, 1, None))["route_config"]["virtual_hosts"][0]
    assert EXT_PROC_FILTER in host["typed_per_filter_config"]  # every route runs the router pass
    routes = host["routes"]
    assert [route["name"] for route in routes] == ["provider_oa", "provider_an", "pool_both", "unrouted"]  # no mock
    for route in routes[:-1]:
        assert route["match"]["headers"] == [{"name": ROUTE_HEADER, "string_match": {"exact": route["name"]}}]
        assert route["response_headers_to_add"][0]["header"]["key"] == PROVIDER_HEADER
    oa, an = routes[0]["route"], routes[1]["route"]
    assert oa["retry_policy"] == {"retry_on": "reset", "num_retries": 0, "per_try_timeout": "3s"}
    assert "retry_policy" not in an and an["timeout"] == "90s"
    assert routes[-1]["match"] == {"prefix": "/"} and routes[-1]["direct_response"]["status"] == 404
