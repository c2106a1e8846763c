"""Script calls (and plain commands) made in one turn of the event loop, sent to Redis as one pipeline.

Under load, one Envoy read brings the bodies of several requests, and each
takes from its buckets in the same turn of the loop. Sent one by one, each
take pays redis-py's whole round trip (a pooled connection, a send, a wait, a
parse); sent together they share one. Nothing waits longer for it: the batch
leaves at the end of the turn it was made in. Each call stays one atomic
script on the server.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.exceptions import NoScriptError


@dataclass(frozen=True, slots=True)
class ScriptCall:
    sha: str | None  # None: a plain command, `args` whole
    source: str
    keys: list[str]
    args: list[Any]
    reply: asyncio.Future[Any]


class ScriptPipeline:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._pending: list[ScriptCall] = []
        self._sending: set[asyncio.Task[None]] = set()  # held until done: the loop keeps only weak references

    def call(self, sha: str, source: str, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        return self._queue(ScriptCall(sha, source, keys, args, asyncio.get_running_loop().create_future()))

    def command(self, *args: Any) -> asyncio.Future[Any]:
        return self._queue(ScriptCall(None, "", [], list(args), asyncio.get_running_loop().create_future()))

    def _queue(self, call: ScriptCall) -> asyncio.Future[Any]:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._send)
        self._pending.append(call)
        return call.reply

    def _send(self) -> None:
        calls, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._run(calls))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _run(self, calls: list[ScriptCall]) -> None:
        try:
            replies = await self._execute(calls)
            forgotten = [call for call, reply in zip(calls, replies, strict=True) if isinstance(reply, NoScriptError)]
            if forgotten:  # the server restarted: load each script once, then run those calls again
                for source in {call.source for call in forgotten}:
                    await self._client.script_load(source)
                again = dict(zip(map(id, forgotten), await self._execute(forgotten), strict=True))
                replies = [again.get(id(call), reply) for call, reply in zip(calls, replies, strict=True)]
        except Exception as error:  # the connection failed: every call of the batch fails with it
            for call in calls:
                _settle(call.reply, error=error)
            return
        for call, reply in zip(calls, replies, strict=True):
            _settle(call.reply, error=reply if isinstance(reply, Exception) else None, result=reply)

    async def _execute(self, calls: list[ScriptCall]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for call in calls:
                if call.sha is None:
                    pipe.execute_command(*call.args)
                else:
                    pipe.evalsha(call.sha, len(call.keys), *call.keys, *call.args)
            return list(await pipe.execute(raise_on_error=False))


def _settle(reply: asyncio.Future[Any], error: BaseException | None = None, result: Any = None) -> None:
    if reply.done():  # its request was cancelled meanwhile
        return
    if error is not None:
        reply.set_exception(error)
    else:
        reply.set_result(result)
