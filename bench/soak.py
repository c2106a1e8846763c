"""`make soak`: the ext_proc processes' memory over a long run at 32 connections.

Starts the bench's fake provider and one gateway (`bench.run.gateway_config`), then loads it
with wrk in slices of BENCH_SLICE_SECONDS (default 30) for BENCH_SOAK_SECONDS (default 600),
cycling through passthrough, translated and streaming requests, and samples the resident set
size of every ext_proc process after each slice. The growth is measured from the first sample
taken after one minute (imports, caches and the allocator have settled by then) to the last.

BENCH_SOAK_MIX=agent cycles instead through a coding agent's 80 KB streamed request
(`bench.agent_body`, the side-by-side harness's `agent` body), passed through and translated
to the Anthropic format: the load whose memory the performance goals bound.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from bench import wrk
from bench.agent_body import agent_request
from bench.envoys import EnvoyProcess
from bench.run import _OPENAI_HEADERS, PROVIDER_KEY_ENV, gateway_config, openai_body
from tests.support.stack import GatewayStack

CONNECTIONS = 32
SETTLE_SECONDS = 60
MIXES = {
    "mixed": [openai_body("gpt-bench"), openai_body("gemini-bench"), openai_body("gemini-bench-stream", stream=True)],
    "agent": [agent_request("gpt-bench-stream"), agent_request("claude-bench-stream")],
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    total = float(os.environ.get("BENCH_SOAK_SECONDS", "600"))
    slice_s = float(os.environ.get("BENCH_SLICE_SECONDS", "30"))
    mix = os.environ.get("BENCH_SOAK_MIX", "mixed")
    if mix not in MIXES:
        raise SystemExit(f"BENCH_SOAK_MIX={mix}: one of {', '.join(MIXES)}")
    with tempfile.TemporaryDirectory(prefix="gateway-soak-") as tmp:
        workdir = Path(tmp)
        fake = EnvoyProcess.fake_provider(workdir).start()
        (workdir / "gateway").mkdir()
        stack = GatewayStack(workdir / "gateway", gateway_config(fake.base_url), {PROVIDER_KEY_ENV: "sk-bench"})
        try:
            stack.start()
            pids = {"main": stack.extproc_process.pid} | {f"worker{i}": p for i, p in enumerate(stack.worker_pids(), 1)}
            scripts = [
                wrk.write_script(workdir / f"mix{i}.lua", json.dumps(body).encode(), _OPENAI_HEADERS)
                for i, body in enumerate(MIXES[mix])
            ]
            url = stack.base_url + "/v1/chat/completions"
            print(
                f"{mix} requests, {total:g} s at {CONNECTIONS} connections, slices of {slice_s:g} s; RSS in MB per process",
                flush=True,
            )
            print("elapsed_s  req/s  " + "  ".join(f"{name:>8}" for name in pids), flush=True)
            samples: list[tuple[float, dict[str, float]]] = []
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < total:
                result = wrk.run(url, scripts[n % len(scripts)], CONNECTIONS, slice_s)
                n += 1
                elapsed = time.monotonic() - started
                rss = {name: rss_mb(pid) for name, pid in pids.items()}
                samples.append((elapsed, rss))
                print(f"{elapsed:9.0f}  {result.rps:5.0f}  " + "  ".join(f"{v:8.1f}" for v in rss.values()), flush=True)
            settled = next((s for t, s in samples if t >= SETTLE_SECONDS), samples[0][1])
            last = samples[-1][1]
            for name in pids:
                growth = (last[name] - settled[name]) / settled[name] * 100 if settled[name] else 0.0
                print(
                    f"{name}: {settled[name]:.1f} MB after the first minute, {last[name]:.1f} MB at the end ({growth:+.1f}%)"
                )
        finally:
            stack.stop()
            fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
