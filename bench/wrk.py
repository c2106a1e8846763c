"""Drive wrk: one POST body per run, results read from a Lua `done()` hook as JSON."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_MARKER = "BENCH_JSON "

# wrk's summary.errors.status counts answers with a status above 399.
_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%.0f,"duration_us":%.0f,"p50_us":%.0f,"p99_us":%.0f,'
    .. '"status_errors":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"timeout":%.0f}\\n',
    "MARKER", summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
""".replace("MARKER", _MARKER)


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int  # wrk counts status >= 400; a 3xx never happens here
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _lua_long_string(text: str) -> str:
    level = "="
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def write_script(path: Path, body: bytes, headers: Mapping[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_long_string(body.decode())}"]
    for name, value in headers.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n" + _DONE)
    return path


def run(url: str, script: Path, connections: int, seconds: float, threads: int = 2) -> WrkResult:
    """One wrk run. wrk needs at least one connection per thread, so 1 connection uses 1 thread."""
    threads = max(1, min(threads, connections))
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(seconds, 1):g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(_MARKER):
            data = json.loads(line[len(_MARKER) :])
            return WrkResult(
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                non_2xx=int(data["status_errors"]),
                socket_errors=int(data["connect"] + data["read"] + data["write"] + data["timeout"]),
            )
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
