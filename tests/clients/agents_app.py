"""A small app on the OpenAI Agents SDK, configured the way its docs tell a user to point it at
another OpenAI-compatible server: one agent with one function tool (``read_note``), run once.

    python -m tests.clients.agents_app --base-url URL --model M --api responses|chat_completions \
        [--stream] "the task"

It prints the agent's final output on stdout. The key comes from ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from agents import (
    Agent,
    Runner,
    function_tool,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)
from openai import AsyncOpenAI


@function_tool
def read_note(path: str) -> str:
    """Read a text file and return its contents.

    Args:
        path: The absolute path of the file.
    """
    return Path(path).read_text()


async def run(task: str, model: str, stream: bool) -> str:
    agent = Agent(name="notes", instructions="Answer with what the files say.", model=model, tools=[read_note])
    if not stream:
        return str((await Runner.run(agent, task)).final_output)
    result = Runner.run_streamed(agent, task)
    async for _ in result.stream_events():
        pass
    return str(result.final_output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--api", choices=["responses", "chat_completions"], required=True)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("task")
    args = parser.parse_args()
    client = AsyncOpenAI(base_url=args.base_url, api_key=os.environ["OPENAI_API_KEY"], max_retries=0)
    set_default_openai_client(client, use_for_tracing=False)
    set_default_openai_api(args.api)
    set_tracing_disabled(True)  # traces would otherwise be exported to OpenAI's servers
    print(asyncio.run(run(args.task, args.model, args.stream)))


if __name__ == "__main__":
    main()
