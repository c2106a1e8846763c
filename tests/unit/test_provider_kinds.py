"""A provider kind is one record (extproc/provider_kinds.py): the schema, the config's checks, the
Envoy rendering and the request path all read it, so what the record says holds everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extproc.config.load import ConfigError, load_text
from extproc.config.model import Provider
from extproc.config.schema import GATEWAY_SCHEMA
from extproc.errors import GatewayError
from extproc.formats import PROVIDER_APIS
from extproc.formats.canonical import ChatRequest, Message, TextPart, Tool
from extproc.formats.provider_params import ASKED, lacking
from extproc.formats.render_options import RenderOptions
from extproc.provider_kinds import AWS_SIGNING_HEADERS, CREDENTIAL_HEADERS, KINDS, Credential, kind_for
from extproc.providers import kind_of
from extproc.providers.rendering import render_options
from extproc.xds.render import render_clusters, render_listeners
from tests.unit.test_pipeline_auth import CONFIG, KEY, body, chat, headers, run

_URL = "https://provider.example/v1"


def _problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    try:
        load_text(text, env or {}, Path("."))
    except ConfigError as error:
        return error.problems
    return []


def _one(kind: str, extra: str = "") -> str:
    url = "" if KINDS[kind].answers_locally else f", base_url: {_URL!r}"
    if KINDS[kind].signed_by_envoy:
        url += ", bedrock: {region: us-east-1}"
    own = ", vertex: {project: pr}" if KINDS[kind].takes_vertex else ""
    return f"providers:\n  - {{name: p, kind: {kind}{url}{own}{extra}}}\n"


def test_the_schema_offers_exactly_the_kinds_that_have_a_record() -> None:
    (kind_schema,) = [GATEWAY_SCHEMA["properties"]["providers"]["items"]["properties"]["kind"]]
    assert kind_schema["enum"] == list(KINDS)


@pytest.mark.parametrize("name", list(KINDS))
def test_a_kind_that_needs_a_key_is_refused_without_one_and_another_is_not(name: str) -> None:
    expected = f"providers[0]: kind {name!r} needs a credential ("
    needs = KINDS[name].needs_key or KINDS[name].signed_by_envoy  # a Bedrock API key or AWS credentials
    assert any(problem.startswith(expected) for problem in _problems(_one(name))) == needs
    credential = KINDS[name].credential
    if credential is not None and credential.minted:  # its tokens are minted: a key is refused, none is fine
        assert _problems(_one(name)) == []
        assert _problems(_one(name, ", api_key_env: K"), {"K": "k"}) == [
            f"providers[0]: kind {name!r} mints its own access tokens (vertex.credentials_file), no api_key"
        ]
    elif not KINDS[name].answers_locally:
        assert _problems(_one(name, ", api_key_env: K"), {"K": "k"}) == []


@pytest.mark.parametrize("name", [name for name, kind in KINDS.items() if kind.answers_locally])
def test_a_kind_that_answers_locally_takes_no_upstream_option_is_never_pooled_and_has_no_cluster(
    name: str, tmp_path: Path
) -> None:
    problems = _problems(_one(name, f", base_url: {_URL!r}, api_key_env: K, allow_plaintext: true"), {"K": "k"})
    assert problems == [
        f"providers[0].{key}: not used by the {name} provider" for key in ("base_url", "api_key_env", "allow_plaintext")
    ]
    pooled = _one("openai-compatible").replace("name: p", "name: q") + f"  - {{name: p, kind: {name}}}\n"
    pooled += "routes:\n  - {name: r, model: '*', pool: [{provider: q}, {provider: p}]}\n"
    assert _problems(pooled) == [
        f"routes[0].pool[1].provider: the {name} provider answers locally and cannot be pooled"
    ]
    config = load_text(_one(name) + "routes:\n  - {model: '*', provider: p}\n", {}, tmp_path)
    rendered = json.dumps(render_clusters(config, tmp_path)) + json.dumps(render_listeners(config, tmp_path))
    assert "provider_p" not in rendered  # no cluster, no Envoy route: the ext_proc answers


@pytest.mark.parametrize("name", list(KINDS))
def test_azure_is_taken_only_by_the_kinds_whose_record_says_so(name: str) -> None:
    takers = " and ".join(repr(n) for n, kind in KINDS.items() if kind.takes_azure)
    problems = _problems(_one(name, ", api_key_env: K, azure: {api_version: '2024-10-21'}"), {"K": "k"})
    assert (f"providers[0].azure: only for kinds {takers}" in problems) == (not KINDS[name].takes_azure)


def test_the_mock_option_is_only_for_a_kind_that_answers_locally() -> None:
    assert _problems(_one("openai-compatible", ", mock: {text: hi}")) == ["providers[0].mock: only for kind 'mock'"]


def test_every_header_a_kind_sends_a_key_in_is_in_the_one_list_of_credential_headers() -> None:
    kinds = [*KINDS.values(), kind_for("openai", "2024-10-21"), kind_for("openai", "2025-04-01")]
    sent = {kind.credential.header for kind in kinds if kind.credential is not None}
    assert sent == set(CREDENTIAL_HEADERS)


@pytest.mark.parametrize("header", CREDENTIAL_HEADERS)
def test_a_clients_key_in_any_credential_header_is_removed_from_what_the_router_pass_forwards(header: str) -> None:
    value = f"Bearer {KEY}" if header == "authorization" else KEY
    first, _ = run(CONFIG, [headers(chat({header: value}, "/v1/messages")), body("claude-3")])
    assert header in first.request_headers.response.header_mutation.remove_headers


def test_each_attempt_of_a_pool_forgets_every_credential_header_before_its_own_is_set(tmp_path: Path) -> None:
    text = (
        "providers:\n"
        f"  - {{name: a, kind: openai, base_url: {_URL!r}, api_key_env: K}}\n"
        f"  - {{name: b, kind: gemini, base_url: {_URL!r}, api_key_env: K}}\n"
        "routes:\n  - {name: r, model: '*', pool: [{provider: a}, {provider: b}]}\n"
    )
    (pool,) = [c for c in render_clusters(load_text(text, {"K": "k"}, tmp_path), tmp_path) if c["name"] == "pool_r"]
    options = pool["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    (forget,) = [f for f in options["http_filters"] if f["name"] == "forget-earlier-attempt"]
    removed = [m["remove"] for m in forget["typed_config"]["mutations"]["request_mutations"]]
    assert removed == [*CREDENTIAL_HEADERS, *AWS_SIGNING_HEADERS]  # a session token never follows either


def test_a_records_paths_are_built_from_plain_values() -> None:
    gemini, azure = KINDS["gemini"], kind_for("openai", "2024-10-21")
    assert gemini.path("/g", None, "gemini", "chat", "models/gemini-x", True, True) == (
        "/g/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    )
    assert azure.path("", "2024-10-21", "openai", "chat", "dep/1", False, True) == (
        "/openai/deployments/dep%2F1/chat/completions?api-version=2024-10-21"
    )


# One value per plain parameter a format may lack, set so that a format without it must say so
_ASKED: dict[str, object] = {
    "top_k": 5,
    "stop": ["END"],
    "n": 2,
    "seed": 7,
    "presence_penalty": 0.5,
    "frequency_penalty": 0.5,
    "parallel_tool_calls": False,
}


def test_every_parameter_a_record_may_name_is_tried_below() -> None:
    assert set(_ASKED) == set(ASKED)


def _asking(parameter: str | None) -> ChatRequest:
    request = ChatRequest("m", [Message("user", [TextPart("hi")])], tools=[Tool("lookup")])
    if parameter is not None:
        setattr(request, parameter, _ASKED[parameter])
    return request


def _provider(name: str, policy: str) -> Provider:
    """A configured provider of kind `name` (an Azure one for "azure") under `policy`."""
    kind = "openai" if name == "azure" else name
    extra = ", azure: {api_version: '2024-10-21'}" if name == "azure" else ""
    credential = KINDS[kind].credential
    extra += "" if credential is None or credential.minted else ", api_key_env: K"
    (provider,) = load_text(_one(kind, f"{extra}, unsupported: {policy}"), {"K": "k"}, Path(".")).providers
    return provider


def _rendered(provider: Provider, request: ChatRequest) -> tuple[bytes, list[str]]:
    """`request` rendered for `provider` in its kind's format, with the options the request path makes;
    the model is a Claude model, whose formats carry the most (Bedrock's top_k depends on the model)."""
    render = PROVIDER_APIS[kind_of(provider).format].render_request
    made = render(request, render_options(provider, "anthropic.claude-sonnet-4-5"))
    return made.body, made.dropped


@pytest.mark.parametrize("name", [*KINDS, "azure"])
@pytest.mark.parametrize("parameter", list(_ASKED))
def test_a_parameter_the_record_says_its_kind_lacks_is_dropped_and_named_or_refused_and_any_other_is_sent(
    name: str, parameter: str
) -> None:
    """The record is the one place a kind's gaps are said: what it names is dropped and named, or
    refused; what it does not name, the kind's format carries (the body changes), so a record that
    forgot a parameter its format has no field for fails here."""
    provider = _provider(name, "drop")
    lacks = parameter in kind_of(provider).unsupported
    plain_body, plain_dropped = _rendered(provider, _asking(None))
    body, dropped = _rendered(provider, _asking(parameter))
    assert (parameter in dropped) == lacks
    assert (body == plain_body) == lacks  # dropped: nothing of it is sent; else it is sent
    assert [feature for feature in dropped if feature != parameter] == plain_dropped
    if lacks:
        with pytest.raises(GatewayError) as refused:
            _rendered(_provider(name, "reject"), _asking(parameter))
        assert refused.value.param == parameter
    else:
        _rendered(_provider(name, "reject"), _asking(parameter))


@pytest.mark.parametrize(
    ("name", "api", "operation", "stream", "path"),
    [
        ("openai", "openai", "chat", False, "/b/chat/completions"),
        ("openai", "responses", "chat", True, "/b/responses"),
        ("openai", "openai", "embeddings", False, "/b/embeddings"),
        ("openai", "responses", "count_tokens", False, "/b/responses/input_tokens"),
        ("openai-compatible", "openai", "models", False, "/b/models"),
        ("openai-responses", "responses", "chat", False, "/b/responses"),
        ("anthropic", "anthropic", "chat", True, "/b/v1/messages"),
        ("anthropic", "anthropic", "count_tokens", False, "/b/v1/messages/count_tokens"),
        ("anthropic", "anthropic", "models", False, "/b/v1/models"),
        ("gemini", "gemini", "chat", False, "/b/v1beta/models/m%3Fx:generateContent"),
        ("gemini", "gemini", "embeddings", False, "/b/v1beta/models/m%3Fx:batchEmbedContents"),
        ("gemini", "gemini", "count_tokens", False, "/b/v1beta/models/m%3Fx:countTokens"),
        ("gemini", "gemini", "models", False, "/b/v1beta/models"),
    ],
)
def test_each_records_path_for_an_operation_keeps_the_model_in_one_segment(
    name: str, api: str, operation: str, stream: bool, path: str
) -> None:
    assert KINDS[name].path("/b", None, api, operation, "m?x", stream, True) == path


def test_an_azure_record_names_the_deployment_and_the_api_version_and_has_responses_from_2025_03_01() -> None:
    old, new = kind_for("openai", "2024-10-21"), kind_for("openai-compatible", "2025-04-01-preview")
    assert old.credential == new.credential == Credential("api-key")
    assert "responses" not in old.also_serves and "responses" in new.also_serves
    assert new.path("/b", "2025-04-01-preview", "responses", "chat", "dep", False, True) == (
        "/b/openai/responses?api-version=2025-04-01-preview"
    )
    assert (
        old.path("/b", "2024-10-21", "openai", "models", "dep", False, True)
        == "/b/openai/models?api-version=2024-10-21"
    )


@pytest.mark.parametrize("name", list(KINDS))
def test_a_record_whose_kind_sends_a_key_sends_it_in_its_format_s_header(name: str) -> None:
    kind = KINDS[name]
    expected = {
        "openai": Credential("authorization", "Bearer "),
        "responses": Credential("authorization", "Bearer "),
        "anthropic": Credential("x-api-key"),
        "gemini": Credential("x-goog-api-key"),
        "bedrock-converse": Credential("authorization", "Bearer "),  # a Bedrock API key
    }[kind.format]
    if kind.credential is not None and kind.credential.minted:  # Vertex AI: a minted OAuth2 access token
        expected = Credential("authorization", "Bearer ", minted=True)
    assert kind.credential == (None if kind.answers_locally else expected)


@pytest.mark.parametrize("api", sorted(set(PROVIDER_APIS) - {"vertex-predict"}))  # :predict embeds only: no chat
@pytest.mark.parametrize("parameter", list(_ASKED))
def test_a_parameter_a_record_would_say_its_format_lacks_is_left_out_of_the_body_whatever_the_format(
    api: str, parameter: str
) -> None:
    """A new kind on an existing format names its gaps in its record alone: a parameter the format
    does carry, once the record says the kind lacks it, is named and sent nowhere in the body."""
    render = PROVIDER_APIS[api].render_request
    options = RenderOptions("anthropic.claude-sonnet-4-5", lacks=lacking([parameter]))
    plain = render(_asking(None), options)
    asked = render(_asking(parameter), options)
    assert parameter in asked.dropped
    assert asked.body == plain.body
