"""Script calls of one turn of the event loop leave as one pipeline (the client is a recording stand-in;
the real Redis path is in tests/integration/test_store_redis.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from extproc.store.script_pipeline import ScriptPipeline


class RecordingClient:
    """Answers each EVALSHA with its first arg; forgets scripts until one is loaded."""

    def __init__(self, knows_scripts: bool = True) -> None:
        self.pipelines: list[list[tuple[Any, ...]]] = []
        self.loaded: list[str] = []
        self.knows_scripts = knows_scripts

    def pipeline(self, transaction: bool) -> RecordingPipeline:
        return RecordingPipeline(self)

    async def script_load(self, source: str) -> None:
        self.loaded.append(source)
        self.knows_scripts = True


class RecordingPipeline:
    def __init__(self, client: RecordingClient) -> None:
        self.client, self.calls = client, []  # type: ignore[var-annotated]

    async def __aenter__(self) -> RecordingPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> None:
        self.calls.append((sha, *keys_and_args))

    async def execute(self, raise_on_error: bool) -> list[Any]:
        self.client.pipelines.append(self.calls)
        if not self.client.knows_scripts:
            return [NoScriptError("NOSCRIPT") for _ in self.calls]
        return [ResponseError("bad") if call[2] == "fail" else call[2] for call in self.calls]


def test_calls_of_one_turn_share_one_pipeline_and_each_gets_its_own_reply() -> None:
    client = RecordingClient()

    async def run() -> list[Any]:
        scripts = ScriptPipeline(client)  # type: ignore[arg-type]
        first = await asyncio.gather(*(scripts.call("sha", "src", ["k"], [i]) for i in range(5)))
        later = await scripts.call("sha", "src", ["k"], ["later"])
        return [*first, later]

    assert asyncio.run(run()) == [0, 1, 2, 3, 4, "later"]
    assert [len(calls) for calls in client.pipelines] == [5, 1]


def test_an_error_reply_fails_only_its_own_call() -> None:
    async def run() -> list[Any]:
        scripts = ScriptPipeline(RecordingClient())  # type: ignore[arg-type]
        calls = [scripts.call("sha", "src", ["k"], [arg]) for arg in ("ok", "fail")]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    ok, failed = asyncio.run(run())
    assert ok == "ok" and isinstance(failed, ResponseError)


def test_scripts_the_server_forgot_are_loaded_once_and_their_calls_run_again() -> None:
    client = RecordingClient(knows_scripts=False)

    async def run() -> list[Any]:
        scripts = ScriptPipeline(client)  # type: ignore[arg-type]
        return list(
            await asyncio.gather(scripts.call("a", "src-a", ["k"], [1]), scripts.call("b", "src-b", ["k"], [2]))
        )

    assert asyncio.run(run()) == [1, 2]
    assert sorted(client.loaded) == ["src-a", "src-b"] and len(client.pipelines) == 2
