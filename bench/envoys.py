"""The two helper Envoys of the benchmark: the fast fake provider and the plain proxy hop.

Both are the same real Envoy binary the gateway runs, with the default
number of worker threads, so the plain hop is a fair baseline for the
gateway's own Envoy.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import yaml

from bench import answers
from extproc.xds.render import envoy_binary
from tests.support.stack import free_port, wait_http, wait_port

_HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
JSON = "application/json"
SSE = "text/event-stream"
EVENT_STREAM = "application/vnd.amazon.eventstream"

# Path prefix -> (content type, body). Streaming providers are configured with a
# base_url under /stream, so their requests land on the SSE answers. The cloud
# kinds are only streamed to: Bedrock's ConverseStream (/model/<id>/converse-stream)
# and Vertex AI's Gemini (/v1/projects/<p>/locations/<l>/publishers/google/models/...).
FAKE_ROUTES: list[tuple[str, str, str | bytes]] = [
    ("/model/", EVENT_STREAM, answers.bedrock_converse_stream()),
    ("/v1/projects/", SSE, answers.gemini_sse()),
    ("/stream/v1/chat/completions", SSE, answers.openai_sse()),
    ("/stream/v1/responses", SSE, answers.responses_sse()),
    ("/stream/v1/messages", SSE, answers.anthropic_sse()),
    ("/stream/v1beta/models/", SSE, answers.gemini_sse()),
    ("/v1/chat/completions", JSON, answers.openai_json()),
    ("/v1/responses", JSON, answers.responses_json()),
    ("/v1/messages", JSON, answers.anthropic_json()),
    ("/v1beta/models/", JSON, answers.gemini_json()),
]


def _listener(name: str, port: int, routes: list[dict[str, Any]]) -> dict[str, Any]:
    hcm = {
        "@type": _HCM_TYPE,
        "stat_prefix": name,
        "codec_type": "AUTO",
        "route_config": {
            "name": name,
            # Room for the SSE answers (the default limit is 4 KiB).
            "max_direct_response_body_size_bytes": 64 * 1024,
            "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}],
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER_TYPE}}],
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }


def _admin(port: int) -> dict[str, Any]:
    return {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}


def _data_source(body: str | bytes) -> dict[str, str]:
    """Envoy's DataSource: a binary body (AWS event-stream frames) goes base64, as proto JSON writes bytes."""
    if isinstance(body, bytes):
        return {"inline_bytes": base64.b64encode(body).decode()}
    return {"inline_string": body}


def fake_provider_bootstrap(port: int, admin_port: int) -> dict[str, Any]:
    """A listener answering every provider path at once with a canned body."""
    routes = [
        {
            "match": {"prefix": prefix},
            "direct_response": {"status": 200, "body": _data_source(body)},
            "response_headers_to_add": [
                {
                    "header": {"key": "content-type", "value": content_type},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            ],
        }
        for prefix, content_type, body in FAKE_ROUTES
    ]
    routes.append({"match": {"prefix": "/"}, "direct_response": {"status": 404, "body": {"inline_string": "no fake"}}})
    return {"admin": _admin(admin_port), "static_resources": {"listeners": [_listener("fake", port, routes)]}}


def plain_proxy_bootstrap(port: int, admin_port: int, upstream_port: int) -> dict[str, Any]:
    """Listener -> router -> one static HTTP/1.1 cluster: Envoy's own cost, nothing else."""
    routes = [{"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "30s"}}]
    cluster = {
        "name": "upstream",
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": "upstream",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}
                            }
                        }
                    ]
                }
            ],
        },
    }
    return {
        "admin": _admin(admin_port),
        "static_resources": {"listeners": [_listener("plain", port, routes)], "clusters": [cluster]},
    }


class EnvoyProcess:
    """One Envoy started from a bootstrap mapping; `stop()` is safe to call twice."""

    def __init__(self, name: str, workdir: Path, bootstrap: dict[str, Any], port: int, admin_port: int) -> None:
        self.name = name
        self.workdir = workdir
        self.bootstrap = bootstrap
        self.port = port
        self.admin_port = admin_port
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def fake_provider(cls, workdir: Path) -> EnvoyProcess:
        port, admin = free_port(), free_port()
        return cls("fake-provider", workdir, fake_provider_bootstrap(port, admin), port, admin)

    @classmethod
    def plain_proxy(cls, workdir: Path, upstream_port: int) -> EnvoyProcess:
        port, admin = free_port(), free_port()
        return cls("envoy-plain", workdir, plain_proxy_bootstrap(port, admin, upstream_port), port, admin)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> EnvoyProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / f"{self.name}.yaml"
        config.write_text(yaml.safe_dump(self.bootstrap, sort_keys=False))
        log = open(self.workdir / f"{self.name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        args = [envoy_binary(), "-c", str(config), "--disable-hot-restart", "-l", "warning"]
        self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{self.admin_port}/ready")
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n{self.logs()}") from None
        return self

    def logs(self) -> str:
        path = self.workdir / f"{self.name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
