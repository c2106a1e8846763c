"""Load gateway.yaml: environment overrides, schema validation, semantic checks.

Every problem is reported at once, each with its path
(`providers[1].base_url: not an http(s) URL`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator, ValidationError

from extproc.addresses import is_loopback
from extproc.auth.identity import ANONYMOUS_NAME, JWT_PREFIX
from extproc.auth.settings import AuthSettings, parse_auth_settings
from extproc.config.load_routes import parse_routes
from extproc.config.model import EnvoySettings, ExtprocSettings, GatewayConfig, Listener, Provider, Route
from extproc.config.schema import GATEWAY_SCHEMA
from extproc.config.tracing import parse_tracing
from extproc.config.traffic import LimitSettings, StoreSettings, parse_cache, parse_limits, parse_store
from extproc.declare import build
from extproc.provider_kinds import KINDS, ProviderKind
from extproc.redact import env_var_unset, schema_message, yaml_problem

_VALIDATOR = Draft202012Validator(GATEWAY_SCHEMA)
# A provider's options about reaching it upstream: a kind that answers locally takes none of them.
_UPSTREAM_OPTIONS = ("base_url", "api_key_env", "api_key_file", "azure", "vertex", "tls", "allow_plaintext")


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists every error with its path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def default_config_text() -> str:
    return resources.files("extproc.config").joinpath("default.yaml").read_text()


def load_file(path: str | Path | None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Load and validate a config file, or the embedded default when `path` is None."""
    text = default_config_text() if path is None else Path(path).read_text()
    base_dir = Path.cwd() if path is None else Path(path).resolve().parent
    return load_text(text, env if env is not None else os.environ, base_dir)


def load_text(text: str, env: Mapping[str, str], base_dir: Path) -> GatewayConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"<file>: {yaml_problem(exc)}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(["<root>: must be a mapping"])
    apply_env_overrides(raw, env)
    problems = [f"{_path(error.absolute_path)}: {_message(error)}" for error in _VALIDATOR.iter_errors(raw)]
    if problems:
        raise ConfigError(sorted(problems))
    problems = []
    config = _build(raw, env, base_dir, problems)
    if problems:
        raise ConfigError(problems)
    return replace(config, text_hash=text_hash(text), secret_files=_secret_files(raw, base_dir))


def _secret_files(raw: dict[str, Any], base_dir: Path) -> tuple[str, ...]:
    """The files the config reads secrets from: a change to one is a reload (a rotated k8s Secret)."""
    named = [provider.get("api_key_file") for provider in raw.get("providers") or []]
    named += [(provider.get("vertex") or {}).get("credentials_file") for provider in raw.get("providers") or []]
    named += [
        (raw.get("extproc") or {}).get("admin_token_file"),
        (raw.get("jwt") or {}).get("secret_file"),
        ((raw.get("store") or {}).get("redis") or {}).get("password_file"),
        (raw.get("tracing") or {}).get("headers_file"),
    ]
    return tuple(sorted({str(_resolve(name, base_dir).absolute()) for name in named if name}))


def instance_run_dir() -> Path:
    """This process's run files (xDS, bootstrap): two gateways started in one directory never share them.
    The main process alone loads the file, so every reload resolves the same directory."""
    return Path(".run") / str(os.getpid())


def run_socket(config: GatewayConfig) -> str | None:
    """Where `extproc run` serves the ext_proc unless `unix_socket` is set: beside Envoy's xDS
    directory, among the run files this instance writes anyway (.run/<pid>/ by default). None
    (loopback TCP then) where that directory cannot be written or the absolute path would not
    fit a socket address (108 bytes on Linux)."""
    run_dir = Path(config.envoy.xds_dir).absolute().parent
    path = run_dir / "extproc.sock"
    try:
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    return str(path) if len(str(path)) < 100 and os.access(run_dir, os.W_OK) else None


def text_hash(text: str) -> str:
    """A config's version: the same text (before the environment is applied) gives the same hash."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    """Ports, log level and per-provider secrets/URLs from the environment win over the file."""
    if level := env.get("GATEWAY_LOG_LEVEL"):
        raw["log_level"] = level
    listeners = raw.setdefault("listeners", [{"name": "main", "port": 10000}])
    if listeners and isinstance(listeners[0], dict):
        if port := env.get("GATEWAY_LISTEN_PORT"):
            listeners[0]["port"] = _int(port)
        if address := env.get("GATEWAY_LISTEN_ADDRESS"):
            listeners[0]["address"] = address
    extproc = raw.setdefault("extproc", {})
    envoy = raw.setdefault("envoy", {})
    for key, section, field_name in (
        ("GATEWAY_EXTPROC_PORT", extproc, "port"),
        ("GATEWAY_ADMIN_PORT", extproc, "admin_port"),
        ("GATEWAY_ENVOY_ADMIN_PORT", envoy, "admin_port"),
    ):
        if value := env.get(key):
            section[field_name] = _int(value)
    if socket := env.get("GATEWAY_EXTPROC_SOCKET"):
        extproc["unix_socket"] = socket
    if xds_dir := env.get("GATEWAY_XDS_DIR"):
        envoy["xds_dir"] = xds_dir
    for provider in raw.get("providers") or []:
        if not isinstance(provider, dict) or not isinstance(provider.get("name"), str):
            continue
        prefix = "GATEWAY_PROVIDER_" + provider["name"].upper().replace("-", "_")
        if url := env.get(prefix + "_BASE_URL"):
            provider["base_url"] = url
        if prefix + "_API_KEY" in env:
            provider.pop("api_key_file", None)
            provider["api_key_env"] = prefix + "_API_KEY"


def _message(error: ValidationError) -> str:
    if error.validator == "pattern" and error.absolute_path and error.absolute_path[-1] == "base_url":
        return "not an http(s) URL"
    return schema_message(error)


def _int(value: str) -> int | str:
    return int(value) if value.isdigit() else value  # a non-number is left for the schema to report


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _build(raw: dict[str, Any], env: Mapping[str, str], base_dir: Path, problems: list[str]) -> GatewayConfig:
    providers = tuple(_provider(i, p, env, base_dir, problems) for i, p in enumerate(raw["providers"]))
    names = [p.name for p in providers]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append(f"providers[{i}].name: duplicate provider name {name!r}")
    routes = parse_routes(raw.get("routes") or [], providers, problems)
    listeners = []
    ports: set[int] = set()
    for i, item in enumerate(raw["listeners"]):
        if item["port"] in ports:
            problems.append(f"listeners[{i}].port: port {item['port']} is used twice")
        ports.add(item["port"])
        files = {}
        for key in ("cert_file", "key_file"):
            if key in (tls := item.get("tls") or {}):
                files[f"tls_{key}"] = str(_resolve(tls[key], base_dir))
                if not Path(files[f"tls_{key}"]).is_file():
                    problems.append(f"listeners[{i}].tls.{key}: file not found: {tls[key]}")
        name, address = item.get("name", f"listener{i}"), item.get("address", "127.0.0.1")
        listeners.append(build(Listener, item, name=name, address=address, **files))
    auth = parse_auth_settings(raw, env, base_dir, problems)
    _check_client_auth(auth, listeners, routes, problems)
    ext = raw["extproc"]
    admin_token = _admin_token(ext.get("admin_token_env"), ext.get("admin_token_file"), env, base_dir, problems)
    env_section = raw["envoy"]
    if env_section.get("ready_port") in ports:
        problems.append(f"envoy.ready_port: port {env_section['ready_port']} is also a listener's port")
    store = parse_store(raw, env, base_dir, problems)
    limits = parse_limits(raw, problems)
    _check_caller_names(auth, routes, limits, problems)
    cache = parse_cache(raw)
    _check_store(store, limits, cache.enabled, ext.get("workers", 1), problems)
    return build(
        GatewayConfig,
        raw,
        providers=providers,
        routes=tuple(routes),
        listeners=tuple(listeners),
        extproc=build(ExtprocSettings, ext, admin_token=admin_token),
        envoy=build(EnvoySettings, env_section, xds_dir=env_section.get("xds_dir", str(instance_run_dir() / "xds"))),
        auth=auth,
        store=store,
        limits=limits,
        cache=cache,
        tracing=parse_tracing(raw, base_dir, problems),
    )


def _check_store(store: StoreSettings, limits: LimitSettings, cache: bool, workers: int, problems: list[str]) -> None:
    if store.backend == "memory" and workers > 1 and (limits.rules or cache):
        problems.append(
            f"store.backend: {workers} ext_proc workers would each keep their own memory store, so every limit "
            "would allow up to {workers} times its figure and the cache would be split; use store.backend: redis "
            "or extproc.workers: 1".replace("{workers}", str(workers))
        )


def _check_caller_names(auth: AuthSettings, routes: list[Route], limits: LimitSettings, problems: list[str]) -> None:
    """With JWT clients and no keys file, every caller's name is known: a rule naming another would
    never match (most likely a token's subject written without its `jwt:`, whose limit would never
    apply)."""
    if auth.jwt is None or auth.keys_file is not None:
        return
    known = {
        "clients": {client.id for client in auth.clients} | {ANONYMOUS_NAME},
        "tenants": {client.tenant for client in auth.clients} | {ANONYMOUS_NAME},
    }
    matches = [(f"routes[{i}].match", route.match.clients, route.match.tenants) for i, route in enumerate(routes)]
    matches += [(f"limits.rules[{i}].match", r.match.clients, r.match.tenants) for i, r in enumerate(limits.rules)]
    for where, clients, tenants in matches:
        for field_name, names in (("clients", clients), ("tenants", tenants)):
            for j, name in enumerate(names):
                if not name.startswith(JWT_PREFIX) and name not in known[field_name]:
                    problems.append(
                        f"{where}.{field_name}[{j}]: no caller is named {name!r}: it is no API-key client's, and "
                        f"a JWT's are {JWT_PREFIX}<claim> (write {JWT_PREFIX + name!r})"
                    )


def _check_client_auth(auth: AuthSettings, listeners: list[Listener], routes: list[Route], problems: list[str]) -> None:
    """Every method named can work, and no listener beyond loopback is open by accident (closed by default)."""
    own: list[tuple[str, str | None]] = [(f"listeners[{i}]", item.auth) for i, item in enumerate(listeners)]
    own += [(f"routes[{i}]", item.auth) for i, item in enumerate(routes)]
    for where, method in own:
        if method is not None and (problem := auth.method_problem(method)):
            problems.append(f"{where}.auth: {problem}")
    for i, listener in enumerate(listeners):
        implicit_none = listener.auth is None and auth.default_method is None and not auth.configured
        if implicit_none and not is_loopback(listener.address):
            problems.append(
                f"listeners[{i}].auth: listener on {listener.address} has no client auth; "
                "configure clients or jwt, or say auth: none"
            )


def _admin_token(
    env_name: str | None, file_name: str | None, env: Mapping[str, str], base_dir: Path, problems: list[str]
) -> str:
    """The bearer token that opens the admin's state-changing endpoints to non-loopback peers."""
    if env_name and file_name:
        problems.append("extproc: give admin_token_env or admin_token_file, not both")
    elif env_name:
        if not env.get(env_name):
            problems.append(env_var_unset("extproc.admin_token_env", env_name))
        return env.get(env_name, "")
    elif file_name:
        try:
            token = _resolve(file_name, base_dir).read_text().strip()
        except OSError:
            problems.append(f"extproc.admin_token_file: cannot read {file_name}")
            return ""
        if not token:
            problems.append(f"extproc.admin_token_file: {file_name} is empty")
        return token
    return ""


def _provider(i: int, raw: dict[str, Any], env: Mapping[str, str], base_dir: Path, problems: list[str]) -> Provider:
    where = f"providers[{i}]"
    kind = KINDS[raw["kind"]]
    base_url = raw.get("base_url", "")
    aws = _aws_options(where, raw, kind, base_dir, problems)
    if kind.default_base_url and not base_url and aws.region:
        base_url = kind.default_base_url.format(region=aws.region)
    if kind.answers_locally:
        problems += [f"{where}.{key}: not used by the {kind.name} provider" for key in _UPSTREAM_OPTIONS if key in raw]
    else:
        if kind.api_root is not None:  # the API root follows the kind's own options (Vertex AI's location)
            base_url = kind.api_root(base_url, raw)
        if not base_url:
            problems.append(f"{where}.base_url: required for kind {kind.name!r}")
        if "mock" in raw:
            problems.append(f"{where}.mock: only for {_kinds_named(lambda k: k.answers_locally)}")
    if "azure" in raw and not kind.takes_azure:
        problems.append(f"{where}.azure: only for {_kinds_named(lambda k: k.takes_azure)}")
    if "anthropic_betas" in raw and not kind.beta_renames:
        problems.append(f"{where}.anthropic_betas: only for {_kinds_named(lambda k: bool(k.beta_renames))}")
    if "vertex" in raw and not kind.takes_vertex:
        problems.append(f"{where}.vertex: only for {_kinds_named(lambda k: k.takes_vertex)}")
    elif kind.takes_vertex and "vertex" not in raw:
        problems.append(f"{where}.vertex: required for kind {kind.name!r} (vertex.project at least)")
    minted = kind.credential is not None and kind.credential.minted
    if minted and ("api_key_env" in raw or "api_key_file" in raw):
        problems.append(
            f"{where}: kind {kind.name!r} mints its own access tokens (vertex.credentials_file), no api_key"
        )
    api_key = ""
    if "api_key_env" in raw and "api_key_file" in raw:
        problems.append(f"{where}: give api_key_env or api_key_file, not both")
    elif "api_key_env" in raw:
        api_key = env.get(raw["api_key_env"], "")
        if not api_key:
            problems.append(env_var_unset(f"{where}.api_key_env", raw["api_key_env"]))
    elif "api_key_file" in raw:
        key_path = _resolve(raw["api_key_file"], base_dir)
        try:
            api_key = key_path.read_text().strip()
        except OSError:
            problems.append(f"{where}.api_key_file: cannot read {raw['api_key_file']}")
    elif kind.needs_key:
        problems.append(f"{where}: kind {kind.name!r} needs a credential (api_key_env or api_key_file)")
    if kind.signed_by_envoy:
        keyed = "api_key_env" in raw or "api_key_file" in raw
        if keyed and "aws_credentials" in raw:
            problems.append(f"{where}: give aws_credentials or a Bedrock API key (api_key_env, api_key_file), not both")
        elif not keyed and "aws_credentials" not in raw:
            problems.append(
                f"{where}: kind {kind.name!r} needs a credential (aws_credentials, or a Bedrock API key "
                "in api_key_env or api_key_file)"
            )
    tls_ca_file = _provider_transport(where, raw, base_url, base_dir, problems)
    overrides: dict[str, Any] = {}
    if credentials_file := (raw.get("vertex") or {}).get("credentials_file"):
        resolved = _resolve(credentials_file, base_dir)
        if not resolved.is_file():
            problems.append(f"{where}.vertex.credentials_file: file not found: {credentials_file}")
        overrides["vertex_credentials_file"] = str(resolved)
    return build(
        Provider,
        raw,
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        tls_ca_file=tls_ca_file,
        aws_credentials_path=aws.path,
        **overrides,
    )


@dataclass(frozen=True, slots=True)
class _Aws:
    region: str = ""
    path: str | None = None  # the credentials file, absolute


_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


def _aws_options(where: str, raw: dict[str, Any], kind: ProviderKind, base_dir: Path, problems: list[str]) -> _Aws:
    """`bedrock:` and `aws_credentials:`, only for a kind Envoy signs for; its region is required."""
    if not kind.signed_by_envoy:
        for key in ("bedrock", "aws_credentials"):
            if key in raw:
                problems.append(f"{where}.{key}: only for {_kinds_named(lambda k: k.signed_by_envoy)}")
        return _Aws()
    region = (raw.get("bedrock") or {}).get("region") or ""
    if not region:
        problems.append(f"{where}.bedrock.region: required for kind {kind.name!r}")
    elif not _REGION.fullmatch(region):
        problems.append(f"{where}.bedrock.region: not an AWS region: {region!r}")
    credentials = raw.get("aws_credentials") or {}
    source, path = credentials.get("source"), credentials.get("path")
    if "aws_credentials" in raw and source is None:
        problems.append(f"{where}.aws_credentials.source: required")
    if source == "file" and not path:
        problems.append(f"{where}.aws_credentials.path: required for source file")
    if source == "web_identity":
        problems += [
            f"{where}.aws_credentials.{key}: required for source web_identity (EKS sets it in the pod as {env})"
            for key, env in (("role_arn", "AWS_ROLE_ARN"), ("token_file", "AWS_WEB_IDENTITY_TOKEN_FILE"))
            if not credentials.get(key)
        ]
    for key, only in (
        ("path", "file"),
        ("profile", "file"),
        ("role_arn", "web_identity"),
        ("token_file", "web_identity"),
    ):
        if key in credentials and source != only:
            problems.append(f"{where}.aws_credentials.{key}: only for source {only}")
    return _Aws(region, str(_resolve(path, base_dir).absolute()) if path else None)


def _kinds_named(which: Callable[[ProviderKind], bool]) -> str:
    """`kind 'mock'`, `kinds 'openai' and 'openai-compatible'`: the kinds an option is for."""
    names = [repr(kind.name) for kind in KINDS.values() if which(kind)]
    if len(names) == 1:
        return f"kind {names[0]}"
    return f"kinds {', '.join(names[:-1])} and {names[-1]}"


def _provider_transport(
    where: str, raw: dict[str, Any], base_url: str, base_dir: Path, problems: list[str]
) -> str | None:
    """Plain http only to loopback unless allowed; `tls.ca_file` only for https and only if it exists."""
    parts = urlsplit(base_url)
    if parts.scheme == "http" and not raw.get("allow_plaintext") and not is_loopback(parts.hostname or ""):
        problems.append(
            f"{where}.base_url: http:// to {parts.hostname} sends prompts and the API key unencrypted; "
            "use https:// or set allow_plaintext: true"
        )
    ca_file = (raw.get("tls") or {}).get("ca_file")
    if ca_file is None:
        return None
    if parts.scheme != "https":
        problems.append(f"{where}.tls: only for an https:// base_url")
    resolved = _resolve(ca_file, base_dir)
    if not resolved.is_file():
        problems.append(f"{where}.tls.ca_file: file not found: {ca_file}")
    return str(resolved)


def _resolve(path: str, base_dir: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else base_dir / candidate
