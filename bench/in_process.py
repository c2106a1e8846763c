"""The ext_proc's own cost per request, without Envoy, sockets or the HTTP/2 server: the messages
Envoy sends for one request (request headers and body, answer headers and body) driven through
`ExternalProcessor.process` in this process, many times over, with API-key auth and request,
token and stream limits in memory (the `ours-auth` settings of the side-by-side harness).

  python -m bench.in_process [chat|stream|xchat|xstream|rchat|rstream|rxchat|rxstream] [--agent] [--cache] [--chunked]
      [--trace|--trace-stalled] [--profile] [--requests N]

`chat`/`stream`: an OpenAI client to an OpenAI provider (same API; a stream's answer goes to the
observer pass, as Envoy sends it, when `extproc.observe_streams` is on); `xchat`/`xstream`: the same
client to an Anthropic provider (both bodies translated); `rchat`/`rstream` and
`rxchat`/`rxstream`: the same request in the Responses API, to the OpenAI provider (same API)
and to the Anthropic provider. `--agent` sends an agent's request of about 80 KB (`bench/agent_body.py`, the side-by-side
harness's agent body: a long system prompt, 16 tools with schemas, 30 earlier messages of tool
calls and their results) instead of two short messages; `--cache` turns the response cache on, every request asking `Cache-Control: no-cache`
so each one computes its key, reaches the provider and is stored (the path of a miss); `--chunked` sends a
stream's answer one event a message (a provider writing an event at a time, as real ones do: the
per-message cost of a stream). `--trace`
turns `tracing` on at sample_ratio 1.0, each request carrying Envoy's sampled traceparent, to an
OTLP/gRPC collector in this process that answers (its parsing of the spans counted in the time:
measure the collector's share with `--trace-stalled`, a collector that never answers, whose spans
are dropped), and prints each thread's CPU per request. Prints µs
per request; `--profile` adds the functions that took the most time (cProfile, which slows
everything down about threefold: read its shares, not its times). The machine's speed moves
between runs: compare two versions one after the other, or count instructions instead:
`--requests N` (default 20,000, and as many warm-up requests up to 2,000) under
`valgrind --tool=callgrind` twice with two values of N, the difference of the totals divided by
the difference of the N is the instructions of one request, whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson
import uvloop
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3.external_processor_pb2 import HttpBody, HttpHeaders, ProcessingRequest

from bench import answers
from bench.agent_body import agent_request
from bench.peers_target import CLIENT_KEY, gateway_config
from extproc.config.load import load_text
from extproc.contract import OBSERVE_KEY, REQUEST_METADATA_NAMESPACE
from extproc.heap import settle_heap
from extproc.server.service import ExternalProcessor
from extproc.state import GatewayState
from tests.support.otlp import OtlpReceiver

REQUESTS = 20_000
WARM_UP = 2_000
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # Envoy's span of its ext_proc call
MODES = ("chat", "stream", "xchat", "xstream", "rchat", "rstream", "rxchat", "rxstream")


def _headers(pairs: list[tuple[str, str]]) -> HttpHeaders:
    return HttpHeaders(headers=HeaderMap(headers=[HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs]))


def as_responses(chat: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions request's conversation and tools as the Responses API says them."""
    items: list[dict[str, Any]] = []
    instructions = None
    for message in chat["messages"]:
        role = message["role"]
        if role == "system" and instructions is None:
            instructions = message["content"]
        elif role == "tool":
            items.append(
                {"type": "function_call_output", "call_id": message["tool_call_id"], "output": message["content"]}
            )
        elif message.get("tool_calls"):
            items += [
                {"type": "function_call", "call_id": call["id"], **call["function"]} for call in message["tool_calls"]
            ]
        else:
            items.append({"role": role, "content": message["content"]})
    tools = [{"type": "function", **tool["function"]} for tool in chat.get("tools", [])]
    return {"instructions": instructions, "input": items, **({"tools": tools} if tools else {})}


def messages(mode: str, agent: bool = False, cache: bool = False, chunked: bool = False) -> list[ProcessingRequest]:
    """What Envoy sends for one request of `mode`, as it sends it. `chunked`: a stream's answer one
    event a message, as Envoy sends a provider's stream that writes an event at a time."""
    stream, responses = mode.endswith("stream"), mode.startswith("r")
    translated = mode.startswith(("x", "rx"))
    model = "fake-model-x" if translated else "fake-model"
    short = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]}
    chat = agent_request(model) if agent else short
    if responses:
        request_body = {"model": model, **as_responses(chat), "max_output_tokens": 64, "stream": stream}
    elif agent:
        request_body = {**chat, "stream": stream}  # the harness's body; `stream` as the mode says
    else:
        request_body = {
            "model": model,
            **chat,
            "max_tokens": 64,
            "stream": stream,
        }
    body = orjson.dumps(request_body)
    answer = {
        (False, False): answers.responses_json if responses else answers.openai_json,
        (True, False): answers.responses_sse if responses else answers.openai_sse,
        (False, True): answers.anthropic_json,
        (True, True): answers.anthropic_sse,
    }[(stream, translated)]().encode()
    request = [
        (":authority", "127.0.0.1:10000"),
        (":path", "/v1/responses" if responses else "/v1/chat/completions"),
        (":method", "POST"),
        (":scheme", "http"),
        ("user-agent", "OpenAI/Python 1.100.0"),
        ("content-type", "application/json"),
        ("authorization", f"Bearer {CLIENT_KEY}"),
        ("content-length", str(len(body))),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "6f1c2b8e-1d2a-4c39-9f1e-2b7c7a0e9d11"),
    ]
    if cache:
        request.append(("cache-control", "no-cache"))
    answer_headers = [
        (":status", "200"),
        ("content-type", "text/event-stream" if stream else "application/json"),
        ("date", "Wed, 02 Dec 2026 15:00:00 GMT"),
        ("server", "envoy"),
    ]
    pieces = [event + b"\n\n" for event in answer.split(b"\n\n") if event] if chunked and stream else [answer]
    return [
        ProcessingRequest(request_headers=_headers(request)),
        ProcessingRequest(request_body=HttpBody(body=body, end_of_stream=True)),
        ProcessingRequest(response_headers=_headers(answer_headers)),
        *(
            ProcessingRequest(response_body=HttpBody(body=p, end_of_stream=i == len(pieces) - 1))
            for i, p in enumerate(pieces)
        ),
    ]


def processor(cache: bool = False, collector: OtlpReceiver | None = None) -> tuple[ExternalProcessor, GatewayState]:
    config = gateway_config(
        "auth-memory",
        10000,
        "http://127.0.0.1:1/v1",
        "http://127.0.0.1:1",
        Path("/nonexistent"),
        ["fake-model", "fake-model-x", "claude-sonnet-4-5"],
    )
    if cache:
        config["cache"] = {"chat_ttl_s": 3600}
    if collector is not None:
        config["tracing"] = {"otlp_endpoint": collector.endpoint, "protocol": collector.protocol, "sample_ratio": 1.0}
    text = orjson.dumps(config).decode()  # JSON is YAML
    state = GatewayState(load_text(text, {"OURS_UPSTREAM_KEY": "sk-unused"}, Path(".")))
    return ExternalProcessor(state), state


async def _requests(
    service: ExternalProcessor, sent: list[ProcessingRequest], count: int, traced: bool = False, observed: bool = False
) -> None:
    """`observed`: a same-API stream, whose answer's body Envoy sends the observer pass instead (on a
    stream of its own, the key the router pass gave it in its metadata), replying to none of it."""
    answer_at = next(i for i, message in enumerate(sent) if message.HasField("response_headers")) + 1
    to_router, to_observer = (sent[:answer_at], sent[answer_at:]) if observed else (sent, [])

    async def feed(messages: list[ProcessingRequest]) -> AsyncIterator[ProcessingRequest]:
        for message in messages:
            yield message

    metadata = {"x-gw-pass": "router", "x-gw-listener": "main"}
    if traced:
        metadata["traceparent"] = TRACEPARENT
    for _ in range(count):
        answered = 0
        async for response in service.process(metadata, feed(to_router)):
            response.SerializeToString()
            answered += 1
            facts = response.dynamic_metadata.fields.get(REQUEST_METADATA_NAMESPACE)
        if answered != len(to_router):
            raise SystemExit(f"{answered} answers to {len(to_router)} messages: the request did not go through")
        if to_observer:
            if facts is None or OBSERVE_KEY not in facts.struct_value.fields:
                raise SystemExit("the router pass did not hand the stream to the observer")
            for message in to_observer:
                message.metadata_context.filter_metadata[REQUEST_METADATA_NAMESPACE].CopyFrom(facts.struct_value)
            async for _ in service.process({"x-gw-pass": "observer"}, feed(to_observer)):
                raise SystemExit("the observer pass replied")
            await asyncio.sleep(0)  # the turn a server's next read gives the finish's background work


def _thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each of this process's Python threads, by name (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[thread.name] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return used


def main(argv: list[str]) -> None:
    mode = next((arg for arg in argv if arg in MODES), "chat")
    cache = "--cache" in argv
    count = int(argv[argv.index("--requests") + 1]) if "--requests" in argv else REQUESTS
    stalled = "--trace-stalled" in argv
    with ExitStack() as closing:
        collector = None
        if stalled or "--trace" in argv:
            collector = closing.enter_context(OtlpReceiver("grpc", stall=stalled))
        (service, state), sent = (
            processor(cache, collector),
            messages(mode, "--agent" in argv, cache, "--chunked" in argv),
        )
        closing.callback(state.close_tracing)
        traced = collector is not None
        observed = mode in ("stream", "rstream") and state.snapshot.config.extproc.observe_streams
        loop = uvloop.new_event_loop()
        loop.run_until_complete(_requests(service, sent, min(WARM_UP, count), traced, observed))
        settle_heap()  # as the server does once started
        started, cpu, threads = time.perf_counter(), time.process_time(), _thread_cpu()
        loop.run_until_complete(_requests(service, sent, count, traced, observed))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        if traced:
            state.tracing.flush(30)  # the export of these requests' spans is theirs too
        spent = {name: used - threads.get(name, 0.0) for name, used in _thread_cpu().items()}
        label = mode + (" agent" if "--agent" in argv else "") + (" cache" if cache else "")
        label += " chunked" if "--chunked" in argv else ""
        label += " traced" + (" (stalled collector)" if stalled else "") if traced else ""
        print(
            f"{label}: {elapsed / count * 1e6:.1f} µs per request, {cpu / count * 1e6:.1f} µs CPU "
            f"({count} requests, one process, no server)"
        )
        if traced:
            print(
                "  CPU µs per request by thread: " + ", ".join(f"{n} {t / count * 1e6:.1f}" for n, t in spent.items())
            )
        if "--profile" in argv:
            profile = cProfile.Profile()
            profile.enable()
            loop.run_until_complete(_requests(service, sent, count // 4, traced, observed))
            profile.disable()
            pstats.Stats(profile).sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(
                int(os.environ.get("PROFILE_ROWS", "25"))
            )


if __name__ == "__main__":
    main(sys.argv[1:])
