"""Command line: serve | run | check | schema | render | keys | spend | prices."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

# Envoy runs as our child; gRPC fork handlers only add noise.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from extproc.config.load import ConfigError, load_file, run_socket
from extproc.config.model import GatewayConfig
from extproc.config.schema import GATEWAY_SCHEMA


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="extproc", description="LLM gateway: Envoy ext_proc service")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "serve the ext_proc gRPC service and the admin HTTP server"),
        ("run", "run the whole local stack: Envoy plus the ext_proc service"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--config", "-c", help="gateway.yaml (default: the embedded config)")
    check = commands.add_parser("check", help="validate a gateway.yaml and exit non-zero on errors")
    check.add_argument("file")
    check.add_argument("--envoy", action="store_true", help="also check the rendered Envoy config")
    schema = commands.add_parser("schema", help="print the JSON Schema of gateway.yaml")
    schema.add_argument("--markdown", action="store_true", help="print the configuration reference in Markdown")
    rendered = commands.add_parser("render", help="write Envoy's bootstrap and xDS files")
    rendered.add_argument("--config", "-c")
    rendered.add_argument("--out", help="xDS directory (default: envoy.xds_dir)")
    spend = commands.add_parser("spend", help="print what each budget has spent in its window (the admin /spend)")
    spend.add_argument("--config", "-c", help="gateway.yaml: where the admin server is, and its token")
    spend.add_argument("--url", help="the admin server (default: from the config)")
    prices = commands.add_parser(
        "prices", help="print the price table in force (the config's prices over the defaults), with sources"
    )
    prices.add_argument("--config", "-c", help="gateway.yaml (default: the embedded config)")
    prices.add_argument("--kind", help="only this provider kind's prices (openai, anthropic, azure, ...)")
    prices.add_argument("--model", help="with --kind: only the entry that prices this model")
    prices.add_argument("--json", action="store_true", help="JSON, one object per entry")
    keys = commands.add_parser("keys", help="client API keys: make one, or hash one")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    keys_commands.add_parser("new", help="print a new client key and the key_hashes line for the config")
    keys_commands.add_parser("hash", help="read a key from stdin (never argv: shell history) and print its hash")
    args = parser.parse_args(argv)

    if args.command == "keys":
        return _keys(args.keys_command)
    if args.command == "schema":
        if args.markdown:
            from extproc.config.reference import config_reference

            sys.stdout.write(config_reference())
        else:
            print(json.dumps(GATEWAY_SCHEMA, indent=2))
        return 0
    if args.command == "prices":
        return _prices(args.config, args.kind, args.model, args.json)
    path = getattr(args, "file", None) or getattr(args, "config", None)
    try:
        started = time.perf_counter()
        config = load_file(path)
        loaded_ms = (time.perf_counter() - started) * 1000
        if args.command == "run" and config.extproc.unix_socket is None and (socket := run_socket(config)) is not None:
            # Envoy is ours and on this host: its ext_proc calls go over a 0600 Unix socket (cheaper than
            # loopback TCP, and no neighbour can dial it). The environment carries it to every later load.
            os.environ["GATEWAY_EXTPROC_SOCKET"] = socket
            config = dataclasses.replace(config, extproc=dataclasses.replace(config.extproc, unix_socket=socket))
    except ConfigError as error:
        print(f"{path or '<embedded default>'}: invalid configuration", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"cannot read config: {error}", file=sys.stderr)
        return 2
    if args.command == "spend":
        return _spend(config, args.url)
    if args.command == "check":
        if args.envoy:
            from extproc.xds.render import validate

            try:
                validate(config)
            except RuntimeError as error:  # Envoy refused the rendering: its own words, no traceback
                print(f"{path or '<embedded default>'}: Envoy rejects the rendered configuration", file=sys.stderr)
                print(f"  {error}", file=sys.stderr)
                return 2
        # On stderr: stdout stays the one line scripts read.
        print(f"{path}: loaded in {loaded_ms:.1f} ms", file=sys.stderr)
        print(f"{path}: ok")
        return 0
    if args.command == "render":
        from extproc.xds import render

        xds_dir = Path(args.out or config.envoy.xds_dir)
        render.write_xds(config, xds_dir)
        print(render.write_bootstrap(config, xds_dir))
        return 0
    from extproc.app.workers import prepare_multiprocess_metrics

    prepare_multiprocess_metrics(config)  # before any import of prometheus_client
    from extproc.app.lifecycle import run

    run(config, with_envoy=args.command == "run", config_path=Path(path) if path else None)
    return 0


def _spend(config: GatewayConfig, url: str | None) -> int:
    """GET /spend with the admin token the config names (read from its env var or file, never argv)."""
    import urllib.error
    import urllib.request

    settings = config.extproc
    host = settings.admin_address if settings.admin_address not in ("0.0.0.0", "::", "") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    request = urllib.request.Request((url or f"http://{host}:{settings.admin_port}").rstrip("/") + "/spend")
    if settings.admin_token:
        request.add_header("Authorization", f"Bearer {settings.admin_token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            report = json.load(answer)
    except urllib.error.HTTPError as error:
        print(
            f"spend: the admin server answered {error.code}: {error.read().decode(errors='replace')}", file=sys.stderr
        )
        return 1
    except (OSError, ValueError) as error:
        print(f"spend: cannot read {request.full_url}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


def _prices(path: str | None, kind: str | None, model: str | None, as_json: bool) -> int:
    """Only the file's `prices` is read: no provider key or other secret is needed to see them."""
    import yaml

    from extproc.spend import listing
    from extproc.spend.prices import price_table

    if model and not kind:
        print("--model needs --kind: prices are per provider kind", file=sys.stderr)
        return 2
    try:
        raw = yaml.safe_load(Path(path).read_text()) if path else None
        table = price_table((raw or {}).get("prices") if isinstance(raw, dict) else None)
    except (OSError, yaml.YAMLError, ValueError) as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(list(listing.rows(table, kind, model)), indent=2))
    else:
        sys.stdout.write(listing.text(table, kind, model))
    if model and kind and table.lookup(kind, model) is None:
        print(f"no price for {kind} model {model!r}: its requests cost 0", file=sys.stderr)
        return 1
    return 0


def _keys(command: str) -> int:
    from extproc.auth.apikeys import hash_key, new_key

    if command == "new":
        key = new_key()
        print(f"key (give it to the client; it is not stored): {key}")
        print("add to the client's record in gateway.yaml or the keys file:")
        print(f'  key_hashes: ["{hash_key(key)}"]')
        return 0
    key = sys.stdin.readline().strip()
    if not key:
        print("keys hash: no key on stdin", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
