"""gateway.yaml client auth: sections, problems with their paths, closed by default, and the keys CLI."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from extproc.auth.apikeys import hash_key
from extproc.config.load import ConfigError, load_file, load_text
from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]
HASH = hash_key("gw-test-key")
BASE = """
providers:
  - {name: m, kind: mock}
routes:
  - {model: "*", provider: m}
"""


def load(text: str, base: Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return load_text(BASE + text, env or {}, base)


def problems_of(text: str, base: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(text, base, env)
    return raised.value.problems


def write_jwks(base: Path) -> None:
    (base / "jwks.json").write_text(json.dumps({"keys": []}))


def test_full_auth_sections_are_built_into_settings(tmp_path: Path) -> None:
    write_jwks(tmp_path)
    (tmp_path / "clients.yaml").write_text("clients: []\n")
    config = load(
        f"""
auth: any
listeners:
  - {{name: main, address: 0.0.0.0, port: 10000, auth: api_key}}
  - {{name: internal, address: 127.0.0.1, port: 10001}}
clients:
  - id: search-team
    tenant: acme
    key_hashes: ["{HASH}"]
    models: ["gpt-*", "claude-*"]
    labels: {{team: search}}
keys_file: clients.yaml
jwt:
  issuer: https://issuer.example
  audience: llm-gateway
  jwks_file: jwks.json
  leeway_s: 10
  claims: {{client: azp, labels: [team]}}
  default_models: ["mock-*"]
""",
        tmp_path,
    )
    auth = config.auth
    assert auth.default_method == "any"
    (client,) = auth.clients
    assert (client.id, client.tenant, client.key_hashes, client.models) == (
        "search-team",
        "acme",
        (HASH,),
        ("gpt-*", "claude-*"),
    )
    assert dict(client.labels) == {"team": "search"}
    assert auth.keys_file == tmp_path / "clients.yaml"
    assert auth.jwt is not None
    assert (auth.jwt.algorithms, auth.jwt.leeway_s, auth.jwt.client_claim) == (("RS256", "ES256"), 10.0, "azp")
    assert auth.jwt.audience == ("llm-gateway",) and auth.jwt.labels_claims == ("team",)
    assert config.listener_auth("main") == "api_key"
    assert config.listener_auth("internal") == "any"
    pickle.loads(pickle.dumps(config))  # the config travels to worker processes


def test_route_auth_override_is_parsed(tmp_path: Path) -> None:
    config = load_text(
        f"""
providers: [{{name: m, kind: mock}}]
routes: [{{model: "gpt-*", provider: m, auth: api_key}}]
clients: [{{id: a, key_hashes: ["{HASH}"]}}]
""",
        {},
        tmp_path,
    )
    assert config.routes[0].auth == "api_key"


def test_configured_clients_make_listeners_require_any_auth(tmp_path: Path) -> None:
    config = load(f'clients: [{{id: a, key_hashes: ["{HASH}"]}}]\n', tmp_path)
    assert config.listener_auth("main") == "any"


def test_hs256_secret_comes_from_the_environment_and_stays_out_of_repr(tmp_path: Path) -> None:
    secret = "s" * 40
    config = load(
        "jwt: {issuer: i, audience: a, algorithms: [HS256], secret_env: JWT_SECRET}\n", tmp_path, {"JWT_SECRET": secret}
    )
    assert config.auth.jwt is not None and config.auth.jwt.secret == secret.encode()
    assert secret not in repr(config)


def test_auth_problems_are_reported_with_their_paths(tmp_path: Path) -> None:
    raw_key = "gw-someone-pasted-a-raw-key"
    problems = problems_of(
        f"""
auth: jwt
listeners:
  - {{name: main, port: 10000, auth: api_key}}
routes:
  - {{model: "x", provider: m, auth: jwt}}
clients:
  - {{id: a, key_hashes: ["{raw_key}"]}}
  - {{id: a, key_hashes: ["{HASH}"]}}
  - {{id: b, key_hashes: ["{HASH}"]}}
keys_file: missing.yaml
""",
        tmp_path,
    )
    assert 'clients[0].key_hashes[0]: not a "sha256:<64 hex>" hash (use `extproc keys hash`)' in problems
    assert "clients[1].id: duplicate client id 'a'" in problems
    assert "clients[2].key_hashes[0]: the same key hash is given to client 'a'" in problems
    assert "keys_file: file not found: missing.yaml" in problems
    assert "auth: auth jwt needs a jwt: section" in problems
    assert "routes[0].auth: auth jwt needs a jwt: section" in problems
    assert not any(raw_key in p for p in problems)


def test_api_key_method_without_clients_or_keys_file_is_a_problem(tmp_path: Path) -> None:
    problems = problems_of("listeners: [{name: main, port: 10000, auth: api_key}]\n", tmp_path)
    assert problems == ["listeners[0].auth: auth api_key needs clients or a keys_file"]


@pytest.mark.parametrize(
    ("jwt", "expected"),
    [
        ("{issuer: i, audience: a}", "jwt: needs a key source: jwks_file, jwks_url, secret_env or secret_file"),
        (
            "{issuer: i, audience: a, jwks_file: jwks.json, jwks_url: 'https://x.test/j'}",
            "jwt: give one key source, not jwks_file and jwks_url",
        ),
        (
            "{issuer: i, audience: a, algorithms: [HS256, RS256], jwks_file: jwks.json}",
            "jwt.algorithms: HS256 needs secret_env or secret_file",
        ),
        (
            "{issuer: i, audience: a, secret_env: S}",
            "jwt.algorithms: RS256/ES256 need jwks_file or jwks_url, not a secret",
        ),
        (
            "{issuer: i, audience: a, algorithms: [HS256], secret_env: UNSET}",
            "jwt.secret_env: environment variable UNSET is not set",
        ),
        (
            "{issuer: i, audience: a, algorithms: [HS256], secret_env: SHORT}",
            "jwt.secret_env: the HS256 secret must be at least 32 bytes",
        ),
        ("{issuer: i, audience: a, jwks_file: nowhere.json}", "jwt.jwks_file: file not found: nowhere.json"),
    ],
)
def test_jwt_section_problems(tmp_path: Path, jwt: str, expected: str) -> None:
    write_jwks(tmp_path)
    problems = problems_of(f"jwt: {jwt}\n", tmp_path, {"S": "s" * 40, "SHORT": "short"})
    assert expected in problems


def test_schema_rejects_unknown_methods_and_algorithms(tmp_path: Path) -> None:
    write_jwks(tmp_path)
    problems = problems_of(
        "auth: maybe\njwt: {issuer: i, audience: a, algorithms: [none], jwks_file: jwks.json}\n", tmp_path
    )
    assert any(p.startswith("auth:") for p in problems)
    assert any(p.startswith("jwt.algorithms[0]:") for p in problems)


def test_a_bad_keys_file_is_a_config_problem(tmp_path: Path) -> None:
    (tmp_path / "clients.yaml").write_text("clients:\n  - {id: a, key_hashes: [not-a-hash]}\n")
    problems = problems_of("keys_file: clients.yaml\n", tmp_path)
    assert problems == [
        'keys_file: clients.yaml: clients[0].key_hashes[0]: not a "sha256:<64 hex>" hash (use `extproc keys hash`)'
    ]


def test_a_listener_beyond_loopback_without_auth_is_refused(tmp_path: Path) -> None:
    problems = problems_of("listeners: [{name: main, address: 0.0.0.0, port: 10000}]\n", tmp_path)
    assert problems == [
        "listeners[0].auth: listener on 0.0.0.0 has no client auth; configure clients or jwt, or say auth: none"
    ]


def test_the_address_from_the_environment_is_checked_too(tmp_path: Path) -> None:
    problems = problems_of("", tmp_path, {"GATEWAY_LISTEN_ADDRESS": "10.0.0.5"})
    assert problems[0].startswith("listeners[0].auth: listener on 10.0.0.5 has no client auth")


@pytest.mark.parametrize(
    "text", ["auth: none\n", "listeners: [{name: main, address: 0.0.0.0, port: 10000, auth: none}]\n"]
)
def test_an_explicit_auth_none_beyond_loopback_is_accepted(tmp_path: Path, text: str) -> None:
    if text.startswith("auth"):
        text += "listeners: [{name: main, address: 0.0.0.0, port: 10000}]\n"
    assert load(text, tmp_path).listener_auth("main") == "none"


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_listeners_may_have_implicit_no_auth(tmp_path: Path, address: str) -> None:
    config = load(f"listeners: [{{name: main, address: '{address}', port: 10000}}]\n", tmp_path)
    assert config.listener_auth("main") == "none"


def test_embedded_default_needs_no_key() -> None:
    assert load_file(None, env={}).listener_auth("main") == "none"


def test_shipped_container_config_requires_api_keys_from_its_keys_file() -> None:
    config = load_file(REPO / "deploy" / "gateway.yaml", env={})
    assert config.listeners[0].address == "0.0.0.0"
    assert config.listener_auth("main") == "api_key"
    assert config.auth.keys_file == REPO / "deploy" / "clients.yaml"


def test_keys_new_prints_a_key_and_the_matching_hash_line() -> None:
    result = run_cli("keys", "new")
    assert result.returncode == 0, result.stderr
    key = next(word for word in result.stdout.split() if word.startswith("gw-"))
    assert f'key_hashes: ["{hash_key(key)}"]' in result.stdout


def test_keys_hash_reads_the_key_from_stdin() -> None:
    result = run_cli("keys", "hash", stdin="gw-test-key\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == HASH


def test_keys_hash_does_not_take_the_key_from_argv() -> None:
    assert run_cli("keys", "hash", "gw-test-key").returncode != 0
    assert run_cli("keys", "hash", stdin="").returncode != 0


# --------------------------------------------------------------------------
# jwks_url transport, as for providers' base_url
# --------------------------------------------------------------------------

PLAINTEXT_JWKS = "jwt: {issuer: i, audience: a, jwks_url: 'http://idp.example/jwks.json'}\n"


def test_extproc_check_refuses_a_jwks_url_over_plain_http_and_says_why_with_the_option_path(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(BASE + PLAINTEXT_JWKS)
    result = run_cli("check", str(config))
    assert result.returncode == 2
    assert (
        "jwt.jwks_url: http:// to idp.example fetches the token signing keys unencrypted: whoever is on the path "
        "could swap them and sign any token; use https:// or set jwt.allow_plaintext: true"
    ) in result.stderr


@pytest.mark.parametrize(
    "jwt",
    [
        "{issuer: i, audience: a, jwks_url: 'http://idp.example/jwks.json', allow_plaintext: true}",
        "{issuer: i, audience: a, jwks_url: 'https://idp.example/jwks.json'}",
        "{issuer: i, audience: a, jwks_url: 'http://127.0.0.1:8080/jwks.json'}",
        "{issuer: i, audience: a, jwks_url: 'http://localhost/jwks.json'}",
    ],
)
def test_a_jwks_url_is_accepted_over_https_to_loopback_or_when_plaintext_is_allowed(tmp_path: Path, jwt: str) -> None:
    settings = load(f"jwt: {jwt}\n", tmp_path).auth.jwt
    assert settings is not None and settings.jwks_url is not None


def test_allow_plaintext_without_a_jwks_url_is_a_problem(tmp_path: Path) -> None:
    write_jwks(tmp_path)
    problems = problems_of("jwt: {issuer: i, audience: a, jwks_file: jwks.json, allow_plaintext: true}\n", tmp_path)
    assert problems == ["jwt.allow_plaintext: only for a jwks_url"]


# --------------------------------------------------------------------------
# Names that belong to other methods' callers
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (
            f'{{id: "jwt:alice", key_hashes: ["{HASH}"]}}',
            "clients[0].id: 'jwt:alice' is reserved: names starting with 'jwt:' are those of JWT clients",
        ),
        (
            f'{{id: ops, tenant: "jwt:acme", key_hashes: ["{HASH}"]}}',
            "clients[0].tenant: 'jwt:acme' is reserved: names starting with 'jwt:' are those of JWT clients",
        ),
        (
            f'{{id: anonymous, key_hashes: ["{HASH}"]}}',
            "clients[0].id: 'anonymous' is reserved: 'anonymous' is the name of callers without a credential "
            "(auth: none)",
        ),
        (
            f'{{id: ops, tenant: anonymous, key_hashes: ["{HASH}"]}}',
            "clients[0].tenant: 'anonymous' is reserved: 'anonymous' is the name of callers without a credential "
            "(auth: none)",
        ),
    ],
)
def test_an_api_key_client_may_not_take_a_name_of_jwt_or_anonymous_callers(
    tmp_path: Path, client: str, expected: str
) -> None:
    assert problems_of(f"clients:\n  - {client}\n", tmp_path) == [expected]


def test_a_keys_file_client_with_a_reserved_name_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "clients.yaml").write_text(f'clients:\n  - {{id: "jwt:svc", key_hashes: ["{HASH}"]}}\n')
    problems = problems_of("keys_file: clients.yaml\n", tmp_path)
    assert problems == [
        "keys_file: clients.yaml: clients[0].id: 'jwt:svc' is reserved: names starting with 'jwt:' are those of "
        "JWT clients"
    ]


def test_a_rule_naming_a_jwt_subject_without_its_prefix_is_refused_where_every_caller_is_known(tmp_path: Path) -> None:
    write_jwks(tmp_path)
    text = f"""
providers: [{{name: m, kind: mock}}]
clients: [{{id: search, tenant: acme, key_hashes: ["{HASH}"]}}]
jwt: {{issuer: i, audience: a, jwks_file: jwks.json}}
routes:
  - {{model: "*", provider: m, match: {{clients: [search, "jwt:svc-a", svc-a, anonymous]}}}}
limits:
  rules: [{{name: svc, key: [client], requests: 5, match: {{tenants: [acme, org-1]}}}}]
"""
    with pytest.raises(ConfigError) as raised:
        load_text(text, {}, tmp_path)
    assert raised.value.problems == [
        "routes[0].match.clients[2]: no caller is named 'svc-a': it is no API-key client's, and a JWT's are "
        "jwt:<claim> (write 'jwt:svc-a')",
        "limits.rules[0].match.tenants[1]: no caller is named 'org-1': it is no API-key client's, and a JWT's are "
        "jwt:<claim> (write 'jwt:org-1')",
    ]
    (tmp_path / "clients.yaml").write_text("clients: []\n")  # clients that may come later: any name may be one
    assert load_text(text + "keys_file: clients.yaml\n", {}, tmp_path).routes[0].match.clients[2] == "svc-a"
