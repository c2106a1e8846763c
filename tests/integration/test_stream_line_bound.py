"""A provider stream with an endless line (8 MB, in small chunks) through the real Envoy: the gateway
stops reading it at its bound (4 MiB). A translated stream, and a same-API one the router pass
carries (`extproc.observe_streams: false`), end the client's stream with an in-band error in the
client's own format; a same-API stream the observer reads reaches the client as the provider sent
it (the provider judges its own API), and the gateway goes on serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from google.genai import errors as genai_errors

from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.base import GEMINI_SSE, SSE_UTF8
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI, Reply
from tests.integration.sdk_outcomes import CLIENT_KEY, anthropic_client, gemini_client, openai_client
from tests.support.stack import GatewayStack
from tests.support.stream_lines import FIRST, LONG_LINE_START

pytestmark = pytest.mark.integration

LINE_BYTES = 8 * 1000 * 1000
CHUNK = 16 * 1024
BOUND = "over 4194304 bytes"  # extproc.max_stream_line_bytes's default
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-test-1", "gemini": "gemini-2.5-flash"}
SAME_API = [("openai", "openai"), ("anthropic", "anthropic"), ("gemini", "gemini")]
CASES = [  # (client API, provider API)
    *SAME_API,
    ("openai", "anthropic"),
    ("anthropic", "gemini"),
    ("gemini", "openai"),
]


@pytest.fixture(scope="module")
def unobserved(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    """A gateway whose router pass carries same-API streams chunk by chunk."""
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["extproc"] = {"observe_streams": False}
    stack = GatewayStack(Path(tmp_path_factory.mktemp("unobserved")), config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


def endless_line(provider: str, paced: bool) -> Reply:
    """`paced`: a pause between chunks, so they reach the ext_proc one by one; else Envoy may pass
    on what piled up while the answer's headers were processed as one piece."""
    line = LONG_LINE_START[provider] + b"x" * LINE_BYTES
    chunks = [FIRST[provider]] + [line[i : i + CHUNK] for i in range(0, len(line), CHUNK)]
    content_type = GEMINI_SSE if provider == "gemini" else SSE_UTF8
    return Reply(content_type=content_type, chunks=chunks, chunk_delay=0.001 if paced else 0.0)


def stream_text(client: str, base_url: str, model: str, received: list[str]) -> None:
    """Stream an answer through the SDK, keeping each text piece as it arrives."""
    if client == "openai":
        chunks = openai_client(base_url).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "go"}], stream=True
        )
        for chunk in chunks:
            received.extend(choice.delta.content or "" for choice in chunk.choices)
    elif client == "anthropic":
        with anthropic_client(base_url).messages.stream(
            model=model, max_tokens=100, messages=[{"role": "user", "content": "go"}]
        ) as events:
            for text in events.text_stream:
                received.append(text)
    else:
        gemini = gemini_client(base_url)  # kept: the SDK closes its connections when the client goes
        for piece in gemini.models.generate_content_stream(model=model, contents="go"):
            received.append(piece.text or "")


ERRORS = {"openai": openai.APIError, "anthropic": anthropic.APIError, "gemini": genai_errors.APIError}


@pytest.mark.parametrize("paced", [True, False], ids=["paced", "at-once"])
@pytest.mark.parametrize(("client", "provider"), CASES, ids=[f"{c}-from-{p}" for c, p in CASES])
def test_an_endless_provider_line_ends_the_clients_stream_with_its_own_in_band_error(
    gateway: GatewayStack,
    unobserved: GatewayStack,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    client: str,
    provider: str,
    paced: bool,
) -> None:
    if (client, provider) in SAME_API:
        gateway = unobserved  # an observed stream is not held back: see the test below
    fakes = {"openai": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini}
    fakes[provider].enqueue(endless_line(provider, paced))
    received: list[str] = []
    with pytest.raises(ERRORS[client]) as raised:
        stream_text(client, gateway.base_url, MODELS[provider], received)
    assert BOUND in str(raised.value)
    assert "".join(received) == "Hi"  # what came before the line reached the client
    assert "x" * 100 not in "".join(received)
    # The gateway goes on serving.
    answer = openai_client(gateway.base_url).chat.completions.create(
        model="mock-1", messages=[{"role": "user", "content": "still there?"}]
    )
    assert answer.choices[0].message.content


PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
}
BODIES = {
    "openai": {"model": MODELS["openai"], "messages": [{"role": "user", "content": "go"}], "stream": True},
    "anthropic": {
        "model": MODELS["anthropic"],
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
    },
    "gemini": {"contents": [{"role": "user", "parts": [{"text": "go"}]}]},
}


@pytest.mark.parametrize(("client", "provider"), SAME_API, ids=[c for c, _ in SAME_API])
def test_an_observed_same_api_stream_reaches_the_client_as_the_provider_sent_it_endless_line_and_all(
    gateway: GatewayStack,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    client: str,
    provider: str,
) -> None:
    fakes = {"openai": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini}
    sent = endless_line(provider, paced=False)
    fakes[provider].enqueue(sent)
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
    with httpx.stream(
        "POST", gateway.base_url + PATHS[client], json=BODIES[client], headers=headers, timeout=30
    ) as answer:
        assert answer.status_code == 200
        received = b"".join(answer.iter_bytes())
    assert received == b"".join(sent.chunks)  # the provider's bytes, the 8 MB line included
    answer = openai_client(gateway.base_url).chat.completions.create(
        model="mock-1", messages=[{"role": "user", "content": "still there?"}]
    )
    assert answer.choices[0].message.content
