"""`make bench`: the gateway's throughput and latency next to a plain Envoy hop.

Starts a fast fake provider (an Envoy answering canned bodies), a plain Envoy
proxying to it, one real gateway (Envoy + ext_proc) with every provider and
route the scenarios need, and a second one with API-key auth, limits and the
response cache on a local redis-server (skipped where there is none). Each scenario is checked with one real request,
then loaded with wrk at each connection count. Environment:

  BENCH_SECONDS      seconds per measurement (default 8), after a 1 s warm-up
  BENCH_CONNECTIONS  comma-separated connection counts (default "1,32")
  BENCH_SCENARIOS    comma-separated scenario names to run (default: all; envoy-plain always runs)
  BENCH_BUSY_POLL_US the ext_proc's extproc.busy_poll_us (default: the gateway's own)
  BENCH_WORKERS      the ext_proc's extproc.workers (default: the gateway's own, 1)

Two more gateways trace every request (sample_ratio 1.0) to an OTLP collector in this process:
one that answers, one that takes each export and never answers. The cloud kinds (Bedrock signed
with SigV4 by Envoy, Vertex AI with a token minted from a fake Google token endpoint) are streamed
to on the fake provider as well.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bench import checks, wrk
from bench.agent_body import agent_request
from bench.envoys import EnvoyProcess
from bench.paced import PacedStreams
from extproc.auth.apikeys import hash_key
from tests.fakes.google_auth import FakeGoogleTokens
from tests.support.metrics import metric_sum
from tests.support.otlp import OtlpReceiver
from tests.support.redis_server import RedisServer
from tests.support.stack import GatewayStack

WARMUP_SECONDS = 1.0
BASELINE = "envoy-plain"
PASSTHROUGH = "gateway-openai-passthrough"
XSTREAM = "gateway-openai-to-anthropic-stream"  # the in-process bench's xstream, through Envoy
AGENT = "gateway-agent-passthrough"
PACED = "gateway-agent-passthrough-paced"  # the same, its answer written an event at a time (bench/paced.py)
PROVIDER_KEY_ENV = "BENCH_OPENAI_KEY"
VERTEX_PROJECT = "bench-project"

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
        PASSTHROUGH,
        "gateway",
        "/v1/chat/completions",
        openai_body("gpt-bench"),
        _OPENAI_HEADERS,
        checks.openai_json(),
    ),
    Scenario(
        "gateway-openai-passthrough-traced",
        "gateway-traced",
        "/v1/chat/completions",
        openai_body("gpt-bench"),
        _OPENAI_HEADERS,
        checks.openai_json(),
    ),
    Scenario(
        "gateway-openai-passthrough-traced-stalled",
        "gateway-traced-stalled",
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
        XSTREAM,
        "gateway",
        "/v1/chat/completions",
        openai_body("claude-bench-stream", stream=True),
        _OPENAI_HEADERS,
        checks.openai_sse(),
    ),
    Scenario(
        "gateway-openai-to-bedrock-stream",
        "gateway",
        "/v1/chat/completions",
        openai_body("bedrock-bench-stream", stream=True),
        _OPENAI_HEADERS,
        checks.openai_sse(),
    ),
    Scenario(
        "gateway-openai-to-vertex-stream",
        "gateway",
        "/v1/chat/completions",
        openai_body("vertex-bench-stream", stream=True),
        _OPENAI_HEADERS,
        checks.openai_sse(),
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
        AGENT,
        "gateway",
        "/v1/chat/completions",
        agent_request("gpt-bench-stream"),
        _OPENAI_HEADERS,
        checks.openai_sse(),
    ),
    Scenario(
        PACED,
        "gateway",
        "/v1/chat/completions",
        agent_request("gpt-bench-paced"),
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


@dataclass(frozen=True, slots=True)
class CloudCredentials:
    """What the cloud kinds sign or mint with: an AWS shared credentials file (Envoy signs with it;
    the fake provider checks no signature) and a Google service-account key whose token_uri is a
    fake token endpoint."""

    aws_credentials_file: Path
    google_key_file: Path


def _base_config(providers: list[dict[str, Any]], routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "log_level": "info",
        "listeners": [{"name": "main"}],
        # The gateway's own worker count and busy polling unless asked (BENCH_WORKERS, BENCH_BUSY_POLL_US).
        "extproc": {
            **({"workers": int(n)} if (n := os.environ.get("BENCH_WORKERS")) else {}),
            **({"busy_poll_us": int(us)} if (us := os.environ.get("BENCH_BUSY_POLL_US")) else {}),
        },
        "providers": providers,
        "routes": routes,
    }


def chosen_scenarios(names: str) -> list[Scenario]:
    """The scenarios named (comma-separated; all when empty), in their usual order, with the baseline."""
    wanted = {name.strip() for name in names.split(",") if name.strip()}
    unknown = wanted - {scenario.name for scenario in SCENARIOS}
    if unknown:
        raise SystemExit(f"BENCH_SCENARIOS: no such scenario: {', '.join(sorted(unknown))}")
    return [s for s in SCENARIOS if not wanted or s.name in wanted or s.name == BASELINE]


def gateway_config(fake_url: str, cloud: CloudCredentials | None = None, paced_url: str = "") -> dict[str, Any]:
    """Every provider the scenarios use. Streaming providers live under /stream on the fake,
    where it answers with SSE bodies; `paced_url` writes its streams an event at a time."""
    key = {"api_key_env": PROVIDER_KEY_ENV}
    config = _base_config(
        [
            {"name": "mock", "kind": "mock", "models": ["mock-1"]},
            *(
                [{"name": "bench-openai-paced", "kind": "openai", "base_url": f"{paced_url}/v1", **key}]
                if paced_url
                else []
            ),
            {"name": "bench-openai", "kind": "openai", "base_url": f"{fake_url}/v1", **key},
            {"name": "bench-openai-stream", "kind": "openai", "base_url": f"{fake_url}/stream/v1", **key},
            {"name": "bench-anthropic-stream", "kind": "anthropic", "base_url": f"{fake_url}/stream", **key},
            {"name": "bench-gemini", "kind": "gemini", "base_url": fake_url, **key},
            {"name": "bench-gemini-stream", "kind": "gemini", "base_url": f"{fake_url}/stream", **key},
        ],
        [
            {"model": "mock-1", "provider": "mock"},
            *([{"model": "gpt-bench-paced", "provider": "bench-openai-paced"}] if paced_url else []),
            {"model": "gpt-bench", "provider": "bench-openai"},
            {"model": "gpt-bench-stream", "provider": "bench-openai-stream"},
            {"model": "claude-bench-stream", "provider": "bench-anthropic-stream"},
            {"model": "gemini-bench", "provider": "bench-gemini"},
            {"model": "gemini-bench-stream", "provider": "bench-gemini-stream"},
        ],
    )
    if cloud is not None:
        aws = {"source": "file", "path": str(cloud.aws_credentials_file)}
        config["providers"] += [
            {
                "name": "bench-bedrock",
                "kind": "bedrock",
                "base_url": fake_url,
                "bedrock": {"region": "us-east-1", "api": "converse"},
                "aws_credentials": aws,
            },
            {
                "name": "bench-vertex",
                "kind": "vertex",
                "base_url": fake_url,
                "vertex": {
                    "project": VERTEX_PROJECT,
                    "location": "us-central1",
                    "credentials_file": str(cloud.google_key_file),
                },
            },
        ]
        config["routes"] += [
            {"model": "bedrock-bench-stream", "provider": "bench-bedrock", "upstream_model": "amazon.nova-lite-v1:0"},
            {"model": "vertex-bench-stream", "provider": "bench-vertex", "upstream_model": "gemini-2.5-flash"},
        ]
    return config


def traced_gateway_config(fake_url: str, collector: OtlpReceiver) -> dict[str, Any]:
    """The passthrough route alone, every request traced (Envoy's spans and the ext_proc's) to `collector`."""
    config = _base_config(
        [{"name": "bench-openai", "kind": "openai", "base_url": f"{fake_url}/v1", "api_key_env": PROVIDER_KEY_ENV}],
        [{"model": "gpt-bench", "provider": "bench-openai"}],
    )
    config["tracing"] = {"otlp_endpoint": collector.endpoint, "protocol": collector.protocol, "sample_ratio": 1.0}
    return config


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
    envoy_cpu_us_per_request: float | None = None  # the Envoy in front (the gateway's or the plain one)
    switches_per_request: float | None = None  # the ext_proc processes' context switches
    messages_per_request: float | None = None  # what Envoy sent the ext_proc (its own stats)
    skipped: str = ""


@dataclass(slots=True)
class Bench:
    seconds: float
    connections: list[int]
    workdir: Path
    rows: list[Row] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    extproc_pids: dict[str, int] = field(default_factory=dict)  # per gateway target
    envoy_pids: dict[str, int] = field(default_factory=dict)  # per target with an Envoy in front
    target_errors: dict[str, str] = field(default_factory=dict)
    stacks: dict[str, GatewayStack] = field(default_factory=dict)
    collectors: dict[str, OtlpReceiver] = field(default_factory=dict)  # of the traced gateways

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
        envoy_pid = self.envoy_pids.get(scenario.target)
        for connections in self.connections:
            wrk.run(url, script, connections, WARMUP_SECONDS)
            stack = self.stacks.get(scenario.target)
            before, envoy_before, sent_before = _usage(pid), _cpu_seconds(envoy_pid), _extproc_messages(stack)
            result = wrk.run(url, script, connections, self.seconds)
            after, envoy_after, sent_after = _usage(pid), _cpu_seconds(envoy_pid), _extproc_messages(stack)
            row = Row(scenario.name, connections, result)
            if sent_before is not None and sent_after is not None and result.requests:
                row.messages_per_request = (sent_after - sent_before) / result.requests
            if before is not None and after is not None and result.requests:
                row.cpu_us_per_request = (after[0] - before[0]) / result.requests * 1e6
                row.switches_per_request = (after[1] - before[1]) / result.requests
            row.envoy_cpu_us_per_request = _per_request(envoy_before, envoy_after, result.requests)
            self.rows.append(row)
            _progress(f"{scenario.name} c={connections}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms")


def _start_gateway(bench: Bench, target: str, stack: GatewayStack, running: contextlib.ExitStack) -> None:
    running.callback(stack.stop)
    try:
        stack.start()
        bench.urls[target] = stack.base_url
        bench.stacks[target] = stack
        bench.extproc_pids[target] = stack.extproc_process.pid  # to count its CPU per request
        bench.envoy_pids[target] = stack.envoy_process.pid
    except Exception as error:  # the baselines still run; this target's rows say why not
        bench.target_errors[target] = f"gateway did not start: {str(error).splitlines()[0]}"
        print(str(error), file=sys.stderr)


def _extproc_messages(stack: GatewayStack | None) -> int | None:
    """The messages the gateway's Envoy has sent its ext_proc so far (every ext_proc filter's
    `stream_msgs_sent`, from its admin stats)."""
    if stack is None:
        return None
    try:
        text = httpx.get(stack.envoy_admin_url + "/stats?filter=ext_proc", timeout=5).text
    except httpx.HTTPError:
        return None
    return sum(int(line.rpartition(": ")[2]) for line in text.splitlines() if ".stream_msgs_sent: " in line)


def _per_request(before: float | None, after: float | None, requests: int) -> float | None:
    if before is None or after is None or not requests:
        return None
    return (after - before) / requests * 1e6


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU of a process and its direct children (ext_proc workers), from /proc."""
    used = _usage(pid)
    return None if used is None else used[0]


def _usage(pid: int | None) -> tuple[float, int] | None:
    """CPU seconds (user + system) and context switches (voluntary: it slept; involuntary: it was
    preempted) of a process and its direct children, every thread counted, from /proc."""
    if pid is None:
        return None
    cpu, switches = 0.0, 0
    found = False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            found = True
            cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            switches += _switches(stat.parent)
    return (cpu, switches) if found else None


def _switches(process: Path) -> int:
    total = 0
    for status in process.glob("task/*/status"):
        try:
            for line in status.read_text().splitlines():
                if "ctxt_switches:" in line:  # voluntary_ and nonvoluntary_
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def _progress(text: str) -> None:
    print(f"  {text}", flush=True)


def render_table(rows: list[Row]) -> str:
    baseline = {r.connections: r.result.rps for r in rows if r.scenario == BASELINE and r.result}
    header = (
        "scenario",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "vs plain",
        "non-2xx",
        "sock err",
        "py cpu us/req",
        "envoy cpu us/req",
        "py ctx sw/req",
        "msgs/req",
    )
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
                f"{row.envoy_cpu_us_per_request:.0f}" if row.envoy_cpu_us_per_request is not None else "-",
                f"{row.switches_per_request:.1f}" if row.switches_per_request is not None else "-",
                f"{row.messages_per_request:.1f}" if row.messages_per_request is not None else "-",
            )
        )
    return "\n".join([_columns(lines), *skipped])


def render_versus(rows: list[Row], base: str, others: list[str], title: str) -> str:
    """`others` next to `base` at each connection count: req/s, p50 and the ext_proc's CPU per
    request, each with its ratio to `base`'s."""
    measured = {(r.scenario, r.connections): r for r in rows if r.result is not None}
    header = ("scenario", "conns", "req/s", "x", "p50 ms", "x", "py cpu us/req", "x")
    lines: list[tuple[str, ...]] = [header]
    for connections in sorted({c for _, c in measured}):
        reference = measured.get((base, connections))
        for name in [base, *others]:
            row = measured.get((name, connections))
            if row is None or row.result is None:
                continue
            ref = reference.result if reference is not None else None
            cpu, ref_cpu = row.cpu_us_per_request, reference.cpu_us_per_request if reference else None
            lines.append(
                (
                    name,
                    str(connections),
                    f"{row.result.rps:,.0f}",
                    _ratio(row.result.rps, ref.rps if ref else None),
                    f"{row.result.p50_ms:.2f}",
                    _ratio(row.result.p50_ms, ref.p50_ms if ref else None),
                    f"{cpu:.0f}" if cpu is not None else "-",
                    _ratio(cpu, ref_cpu),
                )
            )
    return title + "\n" + _columns(lines) if len(lines) > 1 else ""


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}" if value is not None and reference else "-"


def _columns(lines: list[tuple[str, ...]]) -> str:
    """The first line is the header; the first column left-aligned, the others right-aligned."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [cell.rjust(widths[i]) for i, cell in enumerate(line) if i]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    seconds = float(os.environ.get("BENCH_SECONDS", "8"))
    connections = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "1,32").split(",") if c.strip()]
    scenarios = chosen_scenarios(os.environ.get("BENCH_SCENARIOS", ""))
    signal.signal(signal.SIGTERM, _raise_interrupt)  # stop everything on `kill` too
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"cores: {os.cpu_count()}; load average before the run: {load}", flush=True)
    print(f"{seconds:g} s per measurement after a {WARMUP_SECONDS:g} s warm-up; wrk -t2 (-t1 at one connection)")
    print("note: compare ratios to the plain Envoy hop, not absolute numbers: wrk, the Envoys and the ext_proc")
    print("      share this machine's cores with each other (and with anything else running)", flush=True)
    started = time.monotonic()
    notes: list[str] = []
    signed = ""
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp, contextlib.ExitStack() as running:
        workdir = Path(tmp)
        bench = Bench(seconds, connections, workdir)
        try:
            _start_all(bench, running)
            for scenario in scenarios:
                bench.run_scenario(scenario)
            notes = _tracing_notes(bench)
            signed = _signing_note(bench)
        except KeyboardInterrupt:
            print("\ninterrupted: partial results", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave processes behind
            running.close()  # in reverse order of start
            if bench.rows:
                _report(bench.rows, notes, signed)
                load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
                print(f"\n(total {time.monotonic() - started:.0f} s; load average after the run: {load})")
                print("side by side with other gateways (Portkey, LiteLLM): ../shared/bench/peers, see README.md")
    return 0


def _start_all(bench: Bench, running: contextlib.ExitStack) -> None:
    """The fake provider, the plain hop and every gateway; each is stopped by `running`."""
    workdir, env = bench.workdir, {PROVIDER_KEY_ENV: "sk-bench-provider"}
    fake = EnvoyProcess.fake_provider(workdir).start()
    running.callback(fake.stop)
    bench.urls["fake"] = fake.base_url
    plain = EnvoyProcess.plain_proxy(workdir, fake.port).start()
    running.callback(plain.stop)
    bench.urls["plain"] = plain.base_url
    if plain.pid is not None:
        bench.envoy_pids["plain"] = plain.pid
    cloud = _cloud_credentials(workdir, running)
    # wrk stops with the paced streams half written: aiohttp would log each write to a closed connection.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    paced = running.enter_context(PacedStreams())
    _start_gateway(
        bench,
        "gateway",
        GatewayStack(workdir / "gateway", gateway_config(fake.base_url, cloud, paced.base_url), env),
        running,
    )
    for target, collector in (
        ("gateway-traced", OtlpReceiver("grpc")),
        ("gateway-traced-stalled", OtlpReceiver("grpc", stall=True)),
    ):
        bench.collectors[target] = running.enter_context(collector)
        stack = GatewayStack(workdir / target, traced_gateway_config(fake.base_url, collector), env)
        _start_gateway(bench, target, stack, running)
    try:
        redis = RedisServer(workdir / "redis").start()
    except BaseException as error:  # pytest's skip when redis-server is missing
        if isinstance(error, KeyboardInterrupt):
            raise
        bench.target_errors["gateway-redis"] = f"no redis-server: {error}"
        return
    running.callback(redis.stop)
    stack = GatewayStack(workdir / "gateway-redis", redis_gateway_config(fake.base_url, redis.url), env)
    _start_gateway(bench, "gateway-redis", stack, running)


def _cloud_credentials(workdir: Path, running: contextlib.ExitStack) -> CloudCredentials:
    """An AWS credentials file (made-up keys: the fake checks no signature) and a Google key whose
    tokens come from a fake token endpoint in this process (asked once at start, then on refresh)."""
    aws = workdir / "aws-credentials"
    aws.write_text("[default]\naws_access_key_id = AKIABENCHEXAMPLE0000\naws_secret_access_key = bench-secret\n")
    aws.chmod(0o600)
    tokens = running.enter_context(FakeGoogleTokens())
    return CloudCredentials(aws, tokens.write_key_file(workdir / "google-key.json"))


def _tracing_notes(bench: Bench) -> list[str]:
    """What reached each collector, so a traced row is known to have traced."""
    notes = []
    for target, collector in bench.collectors.items():
        stack = bench.stacks.get(target)
        if stack is None:
            continue
        dropped = metric_sum(stack.admin_url, "gateway_trace_spans_dropped_total")
        notes.append(
            f"{target}: the collector took {collector.exports} exports and stored {len(collector.spans())} spans; "
            f"ext_proc spans dropped: {dropped:.0f}"
        )
    return notes


def _signing_note(bench: Bench) -> str:
    """How many requests Envoy's aws_request_signing signed (the Bedrock rows' SigV4, which the fake
    does not check), from the gateway Envoy's stats."""
    stack = bench.stacks.get("gateway")
    if stack is None:
        return ""
    text = httpx.get(stack.envoy_admin_url + "/stats", params={"filter": "aws_request_signing"}, timeout=10).text
    signed = sum(int(line.rpartition(": ")[2]) for line in text.splitlines() if "signing_added" in line)
    return f"Envoy's aws_request_signing signed {signed} Bedrock requests"


def per_message_note(rows: list[Row]) -> list[str]:
    """What each answer message costs, from the agent passthrough whose answer comes in one write and
    the same with its answer written an event at a time: the CPU between them over the messages."""
    notes = []
    for whole in (r for r in rows if r.scenario == AGENT):
        paced = next((r for r in rows if r.scenario == PACED and r.connections == whole.connections), None)
        if paced is None or None in (whole.messages_per_request, paced.messages_per_request):
            continue
        extra = (paced.messages_per_request or 0) - (whole.messages_per_request or 0)
        if extra < 1:
            continue
        costs = [
            f"{name} {((p or 0) - (w or 0)) / extra:.1f} µs"
            for name, p, w in (
                ("ext_proc", paced.cpu_us_per_request, whole.cpu_us_per_request),
                ("Envoy", paced.envoy_cpu_us_per_request, whole.envoy_cpu_us_per_request),
            )
            if p is not None and w is not None
        ]
        notes.append(
            f"{PACED} c={whole.connections}: {extra:.1f} more messages a request than {AGENT}; "
            f"CPU per extra message: {', '.join(costs)}"
        )
    return notes


def _report(rows: list[Row], tracing_notes: list[str], signing_note: str) -> None:
    print()
    print(render_table(rows))
    tracing = render_versus(
        rows,
        PASSTHROUGH,
        ["gateway-openai-passthrough-traced", "gateway-openai-passthrough-traced-stalled"],
        "\ntracing: off, on to a collector that answers, on to one that never answers (sample_ratio 1.0); "
        "x = ratio to tracing off",
    )
    cloud = render_versus(
        rows,
        XSTREAM,
        ["gateway-openai-to-bedrock-stream", "gateway-openai-to-vertex-stream"],
        "\ncloud streams next to xstream (OpenAI chat stream to Anthropic); x = ratio to xstream",
    )
    for text in (tracing, *tracing_notes, cloud, signing_note, *per_message_note(rows)):
        if text:
            print(text)


if __name__ == "__main__":
    sys.exit(main())
