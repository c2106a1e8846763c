"""A reload under steady load (plain and streaming requests) loses or truncates nothing: streams in
flight finish where they started, the new routes, weights, keys and limits hold right after, and a
broken file under load changes nothing."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fakes.base import RecordedRequest, Reply
from tests.fakes.openai import FakeOpenAI
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

OLD_KEY, NEW_KEY = "sk-before-reload", "sk-after-reload"


class NamedFake(FakeOpenAI):
    """Says which provider answered (in the answer's id), accepts the key before and after the
    reload, and streams slowly so streams are in flight."""

    def __init__(self, name: str) -> None:
        super().__init__(api_key=OLD_KEY)
        self.name = name

    def _check_bearer(self, request: RecordedRequest) -> Reply | None:
        if request.headers.get("Authorization") == f"Bearer {NEW_KEY}":
            return None
        return super()._check_bearer(request)

    def decorate(self, reply: Reply, request: RecordedRequest) -> Reply:
        reply = super().decorate(reply, request)
        mark = f'"id":"chatcmpl-{self.name}-'.encode()
        body = reply.body.replace(b'"id":"chatcmpl-', mark)
        chunks = [chunk.replace(b'"id":"chatcmpl-', mark) for chunk in reply.chunks] if reply.chunks else None
        return dataclasses.replace(reply, body=body, chunks=chunks, chunk_delay=0.25 if chunks else 0.0)


def _answered_by(body: bytes) -> str:
    for name in ("first", "second"):
        if f'"id":"chatcmpl-{name}-'.encode() in body:
            return name
    return ""


def _config(first: NamedFake, second: NamedFake, *, after: bool) -> dict[str, Any]:
    def provider(name: str, fake: NamedFake, key_env: str) -> dict[str, Any]:
        return {"name": name, "kind": "openai", "base_url": fake.base_url + "/v1", "api_key_env": key_env}

    return {
        "providers": [
            provider("first", first, "NEW_KEY" if after else "OLD_KEY"),  # the key changes
            provider("second", second, "OLD_KEY"),
        ],
        "routes": [
            {"model": "single-*", "provider": "second" if after else "first"},  # the route changes
            {
                "name": "weighted",
                "model": "pool-*",
                "pool": [  # the weights change
                    {"provider": "first", "weight": 1 if after else 1000},
                    {"provider": "second", "weight": 1000 if after else 1},
                ],
            },
            {"model": "limited-*", "provider": "first"},
        ],
        "limits": {  # the limit changes
            "rules": [
                {
                    "name": "limited",
                    "key": ["model"],
                    "match": {"models": ["limited-1"]},
                    "requests": 1 if after else 1000,
                }
            ]
        },
    }


@dataclasses.dataclass
class Outcome:
    started: float
    kind: str
    ok: bool
    answered_by: str
    detail: str = ""
    ended: float = dataclasses.field(default_factory=time.monotonic)


class Load:
    """Plain and streaming requests from a few threads until stopped; every outcome kept."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.outcomes: list[Outcome] = []
        self._receiving = 0  # streams whose answer is arriving now
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, args=(send,), daemon=True)
            for send in (self._plain, self._plain, self._stream, self._stream, self._stream)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def answered(self, kind: str, after: float = 0.0) -> int:
        """Requests of `kind` started after `after` (time.monotonic()) and answered well."""
        with self._lock:
            return sum(1 for o in self.outcomes if o.kind == kind and o.ok and o.started > after)

    def receiving(self) -> int:
        with self._lock:
            return self._receiving

    def steady(self) -> bool:
        """Every kind of request answered, and streams in flight (their answers arriving)."""
        return all(self.answered(kind) for kind in ("single-1", "pool-1")) and self.receiving() >= 2

    def _loop(self, send: Callable[[httpx.Client, int], Outcome]) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            count = 0
            while not self._stop.is_set():
                count += 1
                outcome = send(client, count)
                with self._lock:
                    self.outcomes.append(outcome)

    @staticmethod
    def _body(model: str, stream: bool = False) -> dict[str, Any]:
        return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "tell me a long story"}]}

    def _plain(self, client: httpx.Client, count: int) -> Outcome:
        started = time.monotonic()
        model = "single-1" if count % 2 else "pool-1"
        try:
            answer = client.post("/v1/chat/completions", json=self._body(model))
        except httpx.HTTPError as error:
            return Outcome(started, model, False, "", repr(error))
        ok = answer.status_code == 200 and bool(answer.json()["choices"][0]["message"]["content"])
        return Outcome(started, model, ok, _answered_by(answer.content), f"{answer.status_code}")

    def _stream(self, client: httpx.Client, _: int) -> Outcome:
        started = time.monotonic()
        try:
            with client.stream("POST", "/v1/chat/completions", json=self._body("single-1", stream=True)) as answer:
                chunks = answer.iter_bytes()
                body = next(chunks, b"")
                with self._lock:
                    self._receiving += 1
                try:
                    body += b"".join(chunks)
                finally:
                    with self._lock:
                        self._receiving -= 1
                by = _answered_by(body)
                status = answer.status_code
        except httpx.HTTPError as error:
            return Outcome(started, "stream", False, "", repr(error))
        whole = status == 200 and b'"finish_reason":"stop"' in body and body.rstrip().endswith(b"data: [DONE]")
        return Outcome(started, "stream", whole, by, f"{status} {body[-80:]!r}")


def _status(stack: GatewayStack) -> dict[str, Any]:
    return httpx.get(stack.admin_url + "/status", timeout=5).json()["config"]


def _wait(check: Callable[[], bool], timeout: float = 30) -> None:
    assert wait_until(check, timeout, interval=0.05), "the load or the reload never got there"


def _chat(stack: GatewayStack, model: str) -> httpx.Response:
    return httpx.post(stack.base_url + "/v1/chat/completions", json=Load._body(model), timeout=10)


def test_a_reload_under_load_loses_nothing_and_applies_routes_weights_keys_and_limits(tmp_path: Path) -> None:
    with NamedFake("first") as first, NamedFake("second") as second:
        env = {"OLD_KEY": OLD_KEY, "NEW_KEY": NEW_KEY}
        stack = GatewayStack(tmp_path, _config(first, second, after=False), env).start()
        try:
            path = tmp_path / "gateway.yaml"
            version = _status(stack)["version"]
            with Load(stack.base_url) as load:
                _wait(load.steady)
                written = yaml.safe_load(path.read_text())
                written.update(_config(first, second, after=True))
                reload_started = time.monotonic()
                path.write_text(yaml.safe_dump(written))
                _wait(lambda: _status(stack)["version"] != version)
                reload_done = time.monotonic()
                first_requests_after = len(first.requests)
                # New requests of every kind, on the new config, and enough of them in all.
                _wait(
                    lambda: (
                        load.answered("stream", reload_done) >= 2
                        and load.answered("single-1", reload_done) >= 2
                        and load.answered("pool-1", reload_done) >= 3
                        and load.answered("stream") >= 6
                        and load.answered("single-1") >= 10
                    )
                )

            outcomes = load.outcomes
            counts = Counter((o.kind, o.ok) for o in outcomes)
            streams = [o.ended - o.started for o in outcomes if o.kind == "stream"]
            print(
                f"reload under load: {len(outcomes)} requests, by (kind, ok): {dict(counts)}; "
                f"reload took {reload_done - reload_started:.2f}s, streams {min(streams):.2f}-{max(streams):.2f}s"
            )
            failed = [o for o in outcomes if not o.ok]
            assert failed == [], failed[:5]
            assert counts[("stream", True)] >= 6 and counts[("single-1", True)] >= 10

            # Streams in flight finished on the config they started with; new ones use the new route.
            before = [o for o in outcomes if o.kind in ("stream", "single-1") and o.started < reload_started]
            after = [o for o in outcomes if o.kind in ("stream", "single-1") and o.started > reload_done]
            assert before and {o.answered_by for o in before} == {"first"}
            spanning = [
                o for o in outcomes if o.kind == "stream" and o.started < reload_started < reload_done < o.ended
            ]
            assert spanning, "no stream was in flight across the reload"
            assert after and {o.answered_by for o in after} == {"second"}
            pooled_after = Counter(o.answered_by for o in outcomes if o.kind == "pool-1" and o.started > reload_done)
            assert pooled_after["second"] > pooled_after["first"]  # the weights moved
            # The new key reached the provider for every request sent after the swap.
            keys_after = {r.headers["Authorization"] for r in first.requests[first_requests_after:]}
            assert keys_after <= {f"Bearer {NEW_KEY}"}

            assert _chat(stack, "limited-1").status_code == 200  # the new limit: one request
            assert _chat(stack, "limited-1").status_code == 429
        finally:
            stack.stop()


def test_a_broken_file_under_load_changes_nothing_and_status_names_it(tmp_path: Path) -> None:
    with NamedFake("first") as first, NamedFake("second") as second:
        stack = GatewayStack(tmp_path, _config(first, second, after=False), {"OLD_KEY": OLD_KEY}).start()
        try:
            path = tmp_path / "gateway.yaml"
            version = _status(stack)["version"]
            with Load(stack.base_url) as load:
                _wait(load.steady)
                path.write_text("providers: [{name: broken, kind: nonsense}]\n")
                _wait(lambda: _status(stack)["last_error"] is not None)
                refused = time.monotonic()
                _wait(lambda: all(load.answered(kind, refused) >= 2 for kind in ("single-1", "pool-1", "stream")))
            failed = [o for o in load.outcomes if not o.ok]
            print(f"broken file under load: {len(load.outcomes)} requests, {len(failed)} failed")
            assert failed == [], failed[:5]
            assert {o.answered_by for o in load.outcomes if o.kind != "pool-1"} == {"first"}
            status = _status(stack)
            assert status["version"] == version
            assert status["last_error"]["path"] == str(path)
            assert any("providers[0].kind" in problem for problem in status["last_error"]["problems"])
        finally:
            stack.stop()
