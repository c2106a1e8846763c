"""This project's gateway as extra targets of the side-by-side harness (`../shared/bench/peers`),
in the settings the performance goals name: API-key auth with limits in memory, the same on
Redis, and the response cache answering every repeated request.

The harness renders template files from its own directory only, so a target's `start` command
runs this module with the harness's tokens; it writes a gateway.yaml into the run's scratch
directory and execs `extproc run` on it. bench/peers-targets.toml lists the targets.

  python -m bench.peers_target VARIANT PORT UPSTREAM_BASE UPSTREAM_ROOT WORKDIR MODEL MODEL_X ANTHROPIC_MODEL

VARIANT: auth-memory | auth-redis | cache-memory. auth-redis expects a redis-server on
127.0.0.1:REDIS_PORT (the target starts one).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from extproc.auth.apikeys import hash_key

CLIENT_KEY = "sk-peers-bench-0c6f2d9e4b7a41c3"  # the harness sends it as `Authorization: Bearer ...`
REDIS_PORT = 18139
# Ports beside the harness's own `ours` (18120-18129): each variant gets its own ten.
PORT_BASE = {"auth-memory": 18140, "auth-redis": 18150, "cache-memory": 18160}
LIMITS = {  # generous: the load never reaches them, every request is still counted and charged
    "rules": [
        {"name": "per-client", "key": ["client"], "requests": 100_000_000, "tokens": 10_000_000_000, "window_s": 60},
        {"name": "streams", "key": ["client"], "concurrent_streams": 1000},
    ]
}


def gateway_config(
    variant: str, port: int, upstream_base: str, upstream_root: str, workdir: Path, models: list[str]
) -> dict[str, Any]:
    model, model_x, anthropic_model = models
    base = PORT_BASE[variant]
    config: dict[str, Any] = {
        "log_level": "warning",
        "listeners": [{"name": "main", "address": "127.0.0.1", "port": port}],
        "extproc": {
            "address": "127.0.0.1",
            "port": base + 1,
            # One worker each, so the Redis variant costs what the store costs; a memory store is one process's.
            "workers": int(os.environ.get("OURS_WORKERS", "1")) if variant == "auth-redis" else 1,
            "admin_address": "127.0.0.1",
            "admin_port": base + 9,
        },
        "envoy": {"admin_port": base + 8, "xds_dir": str(workdir / f"xds-{variant}")},
        "auth": "api_key",
        "clients": [{"id": "bench", "key_hashes": [hash_key(CLIENT_KEY)]}],
        "providers": [
            {"name": "up", "kind": "openai", "base_url": upstream_base, "api_key_env": "OURS_UPSTREAM_KEY"},
            {"name": "upx", "kind": "anthropic", "base_url": upstream_root, "api_key_env": "OURS_UPSTREAM_KEY"},
        ],
        "routes": [
            {"model": model, "provider": "up"},
            {"model": model_x, "provider": "upx", "upstream_model": anthropic_model},
        ],
    }
    if variant.startswith("auth"):
        config["limits"] = LIMITS
    if variant == "auth-redis":
        config["store"] = {"backend": "redis", "redis": {"url": f"redis://127.0.0.1:{REDIS_PORT}/0"}}
    if variant == "cache-memory":
        config["cache"] = {"chat_ttl_s": 3600}
    return config


def main(argv: list[str]) -> None:
    variant, port, upstream_base, upstream_root, workdir, *models = argv
    path = Path(workdir) / f"ours-{variant}.yaml"
    config = gateway_config(variant, int(port), upstream_base, upstream_root, Path(workdir), models)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    extproc = Path(sys.executable).parent / "extproc"
    os.execv(extproc, [str(extproc), "run", "--config", str(path)])


if __name__ == "__main__":
    main(sys.argv[1:])
