"""Typed auth settings, parsed from gateway.yaml's `auth`, `clients`, `keys_file` and `jwt` sections.

`parse_auth_settings` expects a schema-valid document (extproc.config validates
first) and appends every semantic problem as "path: message", like the rest
of the config loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_args
from urllib.parse import urlsplit

from extproc.addresses import is_loopback
from extproc.auth.apikeys import ClientRecord
from extproc.auth.clients import KeysFileError, parse_clients, read_keys_file
from extproc.auth.identity import AuthMethod
from extproc.declare import HTTP_URL, Group, NonEmpty, Schema, build, derived, option, section
from extproc.redact import env_var_unset

Algorithm = Literal["HS256", "RS256", "ES256"]
ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)
_MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash


_SOURCE = "; give one of jwks_file, jwks_url, secret_env, secret_file"
_Claim = NonEmpty


def _audiences(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@section(
    "JWT clients: give exactly one key source (jwks_file, jwks_url, secret_env, secret_file)",
    groups={"claims": Group("which claims carry the client's identity")},
)
@dataclass(frozen=True, slots=True)
class JwtSettings:
    issuer: NonEmpty = option(description="the `iss` a token must carry", examples=["https://issuer.example"])
    audience: tuple[str, ...] = option(
        schema={
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            ]
        },
        convert=_audiences,
        description="the `aud` a token must carry (one of these, when a list)",
        examples=["llm-gateway"],
    )
    algorithms: tuple[Algorithm, ...] = option(
        ("RS256", "ES256"),
        minItems=1,
        uniqueItems=True,
        description="signing algorithms accepted: RS256/ES256 with a JWKS, HS256 with a secret (not both)",
    )
    jwks_file: Path | None = option(
        None,
        schema={"type": "string"},
        description="JWKS file, re-read when it changes" + _SOURCE,
        examples=["jwks.json"],
    )  # absolute once loaded
    jwks_url: str | None = option(
        None,
        pattern=HTTP_URL,
        description="http(s) URL of a JWKS, fetched by the ext_proc. An http:// URL must point at loopback "
        "(127.0.0.0/8, ::1, localhost) unless allow_plaintext is true" + _SOURCE,
        examples=["https://issuer.example/.well-known/jwks.json"],
    )
    allow_plaintext: bool = option(
        False,
        description="allow an http:// jwks_url to a host beyond loopback: whoever is on the path could "
        "swap the keys and sign any token (only for a trusted network, e.g. a service mesh doing mTLS)",
    )  # a jwks_url over http beyond loopback (checked at load)
    secret_env: str | None = option(
        None,
        description="HS256: environment variable holding the secret (at least 32 bytes)" + _SOURCE,
        examples=["GATEWAY_JWT_SECRET"],
    )
    secret_file: str | None = option(
        None,
        description="HS256: file holding the secret (at least 32 bytes)" + _SOURCE,
        examples=["/run/secrets/jwt/secret"],
    )
    leeway_s: Annotated[float, Schema(minimum=0, maximum=600)] = option(
        30.0, description="clock skew allowed when checking `exp` and `nbf`, in seconds"
    )
    jwks_refresh_s: Annotated[float, Schema(minimum=10)] = option(
        300.0, description="how often a jwks_url is fetched again; a token with an unknown `kid` fetches it sooner"
    )
    client_claim: _Claim = option(
        "sub",
        key="claims.client",
        description="the claim naming the client; the gateway calls it `jwt:<value>` (in logs, "
        "limits, route matches and the cache scope), so it never meets an API-key client's id",
    )
    tenant_claim: _Claim = option(
        "tenant",
        key="claims.tenant",
        description="the claim naming the client's tenant, called `jwt:<value>` like the client "
        "(`jwt:default` for a token without it)",
    )
    models_claim: _Claim = option(
        "models",
        key="claims.models",
        description="the claim listing the model globs the client may use (a list, or one string separated by spaces)",
    )
    labels_claims: tuple[_Claim, ...] = option(
        (),
        key="claims.labels",
        description="string claims copied into the client's labels (written in its access-log lines)",
        examples=[["team"]],
    )
    default_models: tuple[NonEmpty, ...] = option(("*",), description="model globs for tokens without a models claim")
    secret: bytes = derived(b"", repr=False)  # HS256 key: never logged


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """The top-level `auth`, `clients`, `keys_file` and `jwt` options."""

    default_method: AuthMethod | None = option(
        None,
        key="auth",
        description="client auth for every listener: none | api_key | jwt | any (an API key or a JWT); not "
        "set: any when clients, a keys_file or jwt are configured, else none",
    )  # top-level `auth`; None when absent
    clients: tuple[ClientRecord, ...] = option((), unset=True, description="API-key clients; keys stored hashed only")
    keys_file: Path | None = option(
        None,
        schema={"type": "string"},
        description="YAML file with more clients (clients: [...]); reloaded on change",
        examples=["clients.yaml"],
    )  # absolute once loaded
    jwt: JwtSettings | None = option(None)

    @property
    def has_api_keys(self) -> bool:
        return bool(self.clients) or self.keys_file is not None

    @property
    def configured(self) -> bool:
        return self.has_api_keys or self.jwt is not None

    def effective_method(self, own: str | None) -> AuthMethod:
        """A listener's or route's own method, else the top-level one, else `any` when auth is configured."""
        if own is not None:
            return cast(AuthMethod, own)
        if self.default_method is not None:
            return self.default_method
        return "any" if self.configured else "none"

    def method_problem(self, method: str) -> str | None:
        """Why `method` cannot work with these settings, or None."""
        if method == "jwt" and self.jwt is None:
            return "auth jwt needs a jwt: section"
        if method == "api_key" and not self.has_api_keys:
            return "auth api_key needs clients or a keys_file"
        if method == "any" and not self.configured:
            return "auth any needs clients, a keys_file or a jwt: section"
        return None


def parse_auth_settings(
    raw: dict[str, Any], env: Mapping[str, str], base_dir: Path, problems: list[str]
) -> AuthSettings:
    clients = parse_clients(raw.get("clients") or [], "clients", problems)
    keys_file = None
    if "keys_file" in raw:
        keys_file = _resolve(raw["keys_file"], base_dir)
        _check_keys_file(keys_file, raw["keys_file"], clients, problems)
    jwt = _jwt(raw["jwt"], env, base_dir, problems) if "jwt" in raw else None
    settings = build(AuthSettings, raw, clients=clients, keys_file=keys_file, jwt=jwt)
    if "auth" in raw and (problem := settings.method_problem(raw["auth"])):
        problems.append(f"auth: {problem}")
    return settings


def _check_keys_file(path: Path, given: str, inline: tuple[ClientRecord, ...], problems: list[str]) -> None:
    # The file is re-read while running; checking it now turns a typo into a refusal to start.
    if not path.is_file():
        problems.append(f"keys_file: file not found: {given}")
        return
    try:
        records = read_keys_file(path)
    except KeysFileError as error:
        problems.extend(f"keys_file: {given}: {problem}" for problem in error.problems)
        return
    inline_hashes = {key_hash: client.id for client in inline for key_hash in client.key_hashes}
    for record in records:
        for key_hash in record.key_hashes:
            if key_hash in inline_hashes:
                problems.append(
                    f"keys_file: {given}: client {record.id!r} reuses a key hash of client {inline_hashes[key_hash]!r}"
                )


def _jwt(raw: dict[str, Any], env: Mapping[str, str], base_dir: Path, problems: list[str]) -> JwtSettings:
    algorithms = raw.get("algorithms", ("RS256", "ES256"))
    sources = [key for key in ("jwks_file", "jwks_url", "secret_env", "secret_file") if key in raw]
    if not sources:
        problems.append("jwt: needs a key source: jwks_file, jwks_url, secret_env or secret_file")
    elif len(sources) > 1:
        problems.append(f"jwt: give one key source, not {' and '.join(sources)}")
    has_secret = "secret_env" in raw or "secret_file" in raw
    if "HS256" in algorithms and not has_secret:
        problems.append("jwt.algorithms: HS256 needs secret_env or secret_file")
    if has_secret and any(alg != "HS256" for alg in algorithms):
        problems.append("jwt.algorithms: RS256/ES256 need jwks_file or jwks_url, not a secret")
    if "jwks_url" in raw:
        _check_jwks_transport(raw["jwks_url"], raw.get("allow_plaintext", False), problems)
    elif "allow_plaintext" in raw:
        problems.append("jwt.allow_plaintext: only for a jwks_url")
    jwks_file = None
    if "jwks_file" in raw:
        jwks_file = _resolve(raw["jwks_file"], base_dir)
        if not jwks_file.is_file():
            problems.append(f"jwt.jwks_file: file not found: {raw['jwks_file']}")
    secret = _secret(raw, env, base_dir, problems) if has_secret else b""
    return build(JwtSettings, raw, jwks_file=jwks_file, secret=secret)


def _check_jwks_transport(url: str, allowed: bool, problems: list[str]) -> None:
    """Plain http only to loopback unless allowed, as for providers: the keys decide who may call."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not allowed and not is_loopback(parts.hostname or ""):
        problems.append(
            f"jwt.jwks_url: http:// to {parts.hostname} fetches the token signing keys unencrypted: whoever is "
            "on the path could swap them and sign any token; use https:// or set jwt.allow_plaintext: true"
        )


def _secret(raw: dict[str, Any], env: Mapping[str, str], base_dir: Path, problems: list[str]) -> bytes:
    if "secret_env" in raw:
        where, value = "jwt.secret_env", env.get(raw["secret_env"], "").encode()
        if not value:
            problems.append(env_var_unset(where, raw["secret_env"]))
            return b""
    else:
        where = "jwt.secret_file"
        try:
            value = _resolve(raw["secret_file"], base_dir).read_bytes().strip()
        except OSError:
            problems.append(f"{where}: cannot read {raw['secret_file']}")
            return b""
    if len(value) < _MIN_SECRET_BYTES:
        problems.append(f"{where}: the HS256 secret must be at least {_MIN_SECRET_BYTES} bytes")
    return value


def _resolve(path: str, base_dir: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else base_dir / candidate
