"""`make bench`: the gateway's throughput and latency next to a plain Envoy hop.

Starts a fast fake provider (an Envoy answering canned bodies), a plain Envoy
proxying to it, one real gateway (Envoy + ext_proc) with every provider and
route the scenarios need, and a second one with API-key auth, limits and the
response cache on a local redis-server (skipped where there is none). Each scenario is checked with one real request,
then loaded with wrk at each connection count. Environment:

  BENCH_SECONDS      seconds per measurement (default 8), after a 1 s warm-up
  BENCH_CONNECTIONS  comma-separated connection counts (default "1,32")
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bench import checks, wrk
from bench.agent_body import agent_request
from bench.envoys import EnvoyProcess
from extproc.auth.apikeys import hash_key
from tests.support.redis_server import RedisServer
from tests.support.stack import GatewayStack

WARMUP_SECONDS = 1.0
BASELINE = "envoy-plain"
PROVIDER_KEY_ENV = "BENCH_OPENAI_KEY"

_CLIENT_KEY = "sk-bench-client"
_OPENAI_HEADERS = {"content-type": "application/json", "authorization": f"Bearer {_CLIENT_KEY}"}
_ANTHROPIC_HEADERS = {
    "content-type": "application/json",
    "x-api-key": _CLIENT_KEY,
    "anthropic-version": "2023-06-01",
}
_SYSTEM = "You are a terse assistant."
_PROMPT = "Say hello in one short sentence."


def openai_body(model: str, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _PROMPT}],
        "max_tokens": 64,
        "temperature": 0.2,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def responses_body(model: str, stream: bool = False) -> dict[str, Any]:
    """The same request as `openai_body`, in the Responses API."""
    body: dict[str, Any] = {
        "model": model,
        "instructions": _SYSTEM,
        "input": [{"role": "user", "content": _PROMPT}],
        "max_output_tokens": 64,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
    return body


def anthropic_body(model: str, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 64,
        "system": _SYSTEM,
        "messages": [{"role": "user", "content": _PROMPT}],
    }
    if stream:
        body["stream"] = True
    return body


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    target: str  # "fake", "plain" or "gateway"
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    check: checks.Check


SCENARIOS = [
    Scenario(
        "fake-provider", "fake", "/v1/chat/completions", openai_body("gpt-bench"), _OPENAI_HEADERS, checks.openai_json()
    ),
    Scenario(
        BASELINE, "plain", "/v1/chat/completions", openai_body("gpt-bench"), _OPENAI_HEADERS, checks.openai_json()
    ),
    Scenario(
        "gateway-mock",
        "gateway",
        "/v1/chat/completions",
        openai_body("mock-1"),
        _OPENAI_HEADERS,
        checks.openai_json(None),
    ),
    Scenario(
        "gateway-openai-passthrough",
        "gateway",
        "/v1/chat/completions",
        openai_body("gpt-bench"),
        _OPENAI_HEADERS,
        checks.openai_json(),
    ),
    Scenario(
        "gateway-responses-passthrough",
        "gateway",
        "/v1/responses",
        responses_body("gpt-bench"),
        _OPENAI_HEADERS,
        checks.responses_json(),
    ),
    Scenario(
        "gateway-openai-to-gemini",
        "gateway",
        "/v1/chat/completions",
        openai_body("gemini-bench"),
        _OPENAI_HEADERS,
        checks.openai_json(),
    ),
    Scenario(
        "gateway-openai-to-gemini-stream",
        "gateway",
        "/v1/chat/completions",
        openai_body("gemini-bench-stream", stream=True),
        _OPENAI_HEADERS,
        checks.openai_sse(),
    ),
    Scenario(
        "gateway-responses-to-gemini",
        "gateway",
        "/v1/responses",
        responses_body("gemini-bench"),
        _OPENAI_HEADERS,
        checks.responses_json(),
    ),
    Scenario(
        "gateway-responses-to-gemini-stream",
        "gateway",
        "/v1/responses",
        responses_body("gemini-bench-stream", stream=True),
        _OPENAI_HEADERS,
        checks.responses_sse(),
    ),
    Scenario(
        "gateway-anthropic-to-openai",
        "gateway",
        "/v1/messages",
        anthropic_body("gpt-bench"),
        _ANTHROPIC_HEADERS,
        checks.anthropic_json(),
    ),
    Scenario(
        "gateway-auth-limits-redis",
        "gateway-redis",
        "/v1/chat/completions",
        openai_body("gpt-bench"),
        _OPENAI_HEADERS,
        checks.openai_json(),
    ),
    Scenario(
        "gateway-cache-hit-redis",
        "gateway-redis",
        "/v1/chat/completions",
        openai_body("gpt-bench-cached"),
        _OPENAI_HEADERS,
        checks.openai_json(),
    ),
    Scenario(
        "gateway-anthropic-to-openai-stream",
        "gateway",
        "/v1/messages",
        anthropic_body("gpt-bench-stream", stream=True),
        _ANTHROPIC_HEADERS,
        checks.anthropic_sse(),
    ),
    Scenario(
        "gateway-agent-passthrough",
        "gateway",
        "/v1/chat/completions",
        agent_request("gpt-bench-stream"),
        _OPENAI_HEADERS,
        checks.openai_sse(),
    ),
    Scenario(
        "gateway-agent-to-anthropic",
        "gateway",
        "/v1/chat/completions",
        agent_request("claude-bench-stream"),
        _OPENAI_HEADERS,
        checks.openai_sse(),
    ),
]


def gateway_config(fake_url: str) -> dict[str, Any]:
    """Every provider the scenarios use. Streaming providers live under /stream on the fake,
    where it answers with SSE bodies."""
    key = {"api_key_env": PROVIDER_KEY_ENV}
    return {
        "log_level": "info",
        "listeners": [{"name": "main"}],
        # One ext_proc process per core by default: each is an endpoint of Envoy's ext_proc cluster.
        "extproc": {"workers": int(os.environ.get("BENCH_WORKERS", os.cpu_count() or 1))},
        "providers": [
            {"name": "mock", "kind": "mock", "models": ["mock-1"]},
            {"name": "bench-openai", "kind": "openai", "base_url": f"{fake_url}/v1", **key},
            {"name": "bench-openai-stream", "kind": "openai", "base_url": f"{fake_url}/stream/v1", **key},
            {"name": "bench-gemini", "kind": "gemini", "base_url": fake_url, **key},
            {"name": "bench-gemini-stream", "kind": "gemini", "base_url": f"{fake_url}/stream", **key},
            {"name": "bench-anthropic-stream", "kind": "anthropic", "base_url": f"{fake_url}/stream", **key},
        ],
        "routes": [
            {"model": "mock-1", "provider": "mock"},
            {"model": "gpt-bench", "provider": "bench-openai"},
            {"model": "gpt-bench-stream", "provider": "bench-openai-stream"},
            {"model": "gemini-bench", "provider": "bench-gemini"},
            {"model": "gemini-bench-stream", "provider": "bench-gemini-stream"},
            {"model": "claude-bench-stream", "provider": "bench-anthropic-stream"},
        ],
    }


def redis_gateway_config(fake_url: str, redis_url: str) -> dict[str, Any]:
    """The passthrough route behind an API key and limits (never reached) on Redis, and a cached route."""
    config = gateway_config(fake_url)
    config["clients"] = [{"id": "bench", "tenant": "bench", "key_hashes": [hash_key(_CLIENT_KEY)]}]
    config["store"] = {"backend": "redis", "redis": {"url": redis_url}}
    config["limits"] = {
        "rules": [{"name": "per-client", "key": ["client"], "requests": 10**9, "tokens": 10**12, "window_s": 60}]
    }
    config["cache"] = {}
    for provider in config["providers"]:
        provider["cache_ttl_s"] = 0  # only the cached route below is cached
    config["routes"].append({"model": "gpt-bench-cached", "provider": "bench-openai", "cache_ttl_s": 3600})
    return config


@dataclass(slots=True)
class Row:
    scenario: str
    connections: int = 0
    result: wrk.WrkResult | None = None
    cpu_us_per_request: float | None = None  # the ext_proc process, gateway scenarios only
    skipped: str = ""


@dataclass(slots=True)
class Bench:
    seconds: float
    connections: list[int]
    workdir: Path
    rows: list[Row] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    extproc_pids: dict[str, int] = field(default_factory=dict)  # per gateway target
    target_errors: dict[str, str] = field(default_factory=dict)

    def run_scenario(self, scenario: Scenario) -> None:
        base = self.urls.get(scenario.target)
        if base is None:
            self.rows.append(Row(scenario.name, skipped=self.target_errors.get(scenario.target, "not started")))
            return
        url = base + scenario.path
        body = json.dumps(scenario.body, separators=(",", ":")).encode()  # compact, as the side-by-side harness sends
        problem = checks.probe(url, body, scenario.headers, scenario.check)
        if problem:
            self.rows.append(Row(scenario.name, skipped=problem))
            _progress(f"{scenario.name}: skipped: {problem}")
            return
        script = wrk.write_script(self.workdir / f"{scenario.name}.lua", body, scenario.headers)
        pid = self.extproc_pids.get(scenario.target)
        for connections in self.connections:
            wrk.run(url, script, connections, WARMUP_SECONDS)
            cpu_before = _cpu_seconds(pid)
            result = wrk.run(url, script, connections, self.seconds)
            cpu_after = _cpu_seconds(pid)
            cpu = None
            if cpu_before is not None and cpu_after is not None and result.requests:
                cpu = (cpu_after - cpu_before) / result.requests * 1e6
            self.rows.append(Row(scenario.name, connections, result, cpu))
            _progress(f"{scenario.name} c={connections}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms")


def _start_gateway(bench: Bench, target: str, stack: GatewayStack) -> None:
    try:
        stack.start()
        bench.urls[target] = stack.base_url
        bench.extproc_pids[target] = stack.extproc_process.pid  # to count its CPU per request
    except Exception as error:  # the baselines still run; this target's rows say why not
        bench.target_errors[target] = f"gateway did not start: {str(error).splitlines()[0]}"
        print(str(error), file=sys.stderr)


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU of a process and its direct children (ext_proc workers), from /proc."""
    if pid is None:
        return None
    total = 0.0
    found = False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            found = True
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total if found else None


def _progress(text: str) -> None:
    print(f"  {text}", flush=True)


def render_table(rows: list[Row]) -> str:
    baseline = {r.connections: r.result.rps for r in rows if r.scenario == BASELINE and r.result}
    header = ("scenario", "conns", "req/s", "p50 ms", "p99 ms", "vs plain", "non-2xx", "sock err", "py cpu us/req")
    lines: list[tuple[str, ...]] = [header]
    skipped: list[str] = []
    for row in rows:
        if row.result is None:
            skipped.append(f"{row.scenario:<36} skipped: {row.skipped}")
            continue
        r = row.result
        plain = baseline.get(row.connections)
        lines.append(
            (
                row.scenario,
                str(row.connections),
                f"{r.rps:,.0f}",
                f"{r.p50_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.rps / plain:.2f}" if plain else "-",
                str(r.non_2xx),
                str(r.socket_errors),
                f"{row.cpu_us_per_request:.0f}" if row.cpu_us_per_request is not None else "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [cell.rjust(widths[i]) for i, cell in enumerate(line) if i]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out + skipped)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    seconds = float(os.environ.get("BENCH_SECONDS", "8"))
    connections = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "1,32").split(",") if c.strip()]
    signal.signal(signal.SIGTERM, _raise_interrupt)  # stop everything on `kill` too
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"cores: {os.cpu_count()}; load average before the run: {load}", flush=True)
    print(f"{seconds:g} s per measurement after a {WARMUP_SECONDS:g} s warm-up; wrk -t2 (-t1 at one connection)")
    print("note: compare ratios to the plain Envoy hop, not absolute numbers: wrk, the Envoys and the ext_proc")
    print("      share this machine's cores with each other (and with anything else running)", flush=True)
    started = time.monotonic()
    stopping: list[EnvoyProcess | GatewayStack | RedisServer] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        workdir = Path(tmp)
        bench = Bench(seconds, connections, workdir)
        try:
            fake = EnvoyProcess.fake_provider(workdir).start()
            stopping.append(fake)
            bench.urls["fake"] = fake.base_url
            plain = EnvoyProcess.plain_proxy(workdir, fake.port).start()
            stopping.append(plain)
            bench.urls["plain"] = plain.base_url
            stack = GatewayStack(
                workdir / "gateway", gateway_config(fake.base_url), {PROVIDER_KEY_ENV: "sk-bench-provider"}
            )
            stopping.append(stack)
            _start_gateway(bench, "gateway", stack)
            try:
                redis = RedisServer(workdir / "redis").start()
                stopping.append(redis)
                redis_stack = GatewayStack(
                    workdir / "gateway-redis",
                    redis_gateway_config(fake.base_url, redis.url),
                    {PROVIDER_KEY_ENV: "sk-bench-provider"},
                )
                stopping.append(redis_stack)
                _start_gateway(bench, "gateway-redis", redis_stack)
            except BaseException as error:  # pytest's skip when redis-server is missing
                if isinstance(error, KeyboardInterrupt):
                    raise
                bench.target_errors["gateway-redis"] = f"no redis-server: {error}"
            for scenario in SCENARIOS:
                bench.run_scenario(scenario)
        except KeyboardInterrupt:
            print("\ninterrupted: partial results", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave processes behind
            for process in reversed(stopping):
                process.stop()
            if bench.rows:
                print()
                print(render_table(bench.rows))
                load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
                print(f"\n(total {time.monotonic() - started:.0f} s; load average after the run: {load})")
                print("side by side with other gateways (Portkey, LiteLLM): ../shared/bench/peers, see README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
