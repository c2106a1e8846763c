"""Every parser checks the model name it reads with the one shared rule, and a bad name is
a 400 in the client's own format whose message echoes at most 64 characters of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from extproc.errors import GatewayError, client_status
from extproc.formats import anthropic, gemini, openai
from extproc.formats.model_name import MAX_MODEL_LENGTH


def _openai_chat(model: str) -> Any:
    return openai.parse_request(orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}))


def _openai_embeddings(model: str) -> Any:
    return openai.parse_embedding_request(orjson.dumps({"model": model, "input": "hi"}))


def _openai_path_model(model: str) -> Any:  # Azure deployments: the model comes from the path
    return openai.parse_request(orjson.dumps({"messages": [{"role": "user", "content": "hi"}]}), model)


def _anthropic(model: str) -> Any:
    body = {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    return anthropic.parse_request(orjson.dumps(body))


def _gemini_chat(model: str) -> Any:
    return gemini.parse_request(orjson.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}), model)


def _gemini_embed(model: str) -> Any:
    return gemini.parse_embedding_request(orjson.dumps({"content": {"parts": [{"text": "hi"}]}}), model)


def _gemini_batch_embed(model: str) -> Any:
    body = {"requests": [{"content": {"parts": [{"text": "hi"}]}}]}
    return gemini.parse_embedding_request(orjson.dumps(body), model, batch=True)


PARSERS: dict[str, Callable[[str], Any]] = {
    "openai-chat": _openai_chat,
    "openai-embeddings": _openai_embeddings,
    "openai-path-model": _openai_path_model,
    "anthropic": _anthropic,
    "gemini-chat": _gemini_chat,
    "gemini-embed": _gemini_embed,
    "gemini-batch-embed": _gemini_batch_embed,
}
GOOD = [
    "gpt-4o",
    "ft:gpt-4o-mini:my-org::abc123",
    "claude-sonnet-4@20250514",
    "meta-llama/Llama-3.1-8B-Instruct",
    "llama3.1:8b",
    "a+b",
    "m" * MAX_MODEL_LENGTH,
]
BAD = [
    "../../v1/files",
    "a/../b",
    "a/./b",
    "a/..",
    "a?key=x",
    "a#b",
    "a b",
    "a%2Fb",
    "a\nb",
    "a\x00",
    "-leading-dash",
    ".hidden",
    "/abs",
    "é",
    "m" * (MAX_MODEL_LENGTH + 1),
]


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("model", GOOD)
def test_real_model_names_are_accepted_unchanged(parser: str, model: str) -> None:
    assert PARSERS[parser](model).model == model


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("model", BAD)
def test_bad_model_name_is_a_400_naming_the_model_param(parser: str, model: str) -> None:
    with pytest.raises(GatewayError) as caught:
        PARSERS[parser](model)
    error = caught.value
    assert (error.kind, error.param, client_status(error)) == ("invalid_request", "model", 400)
    assert "letters, digits" in error.message


@pytest.mark.parametrize("parser", PARSERS)
def test_bad_model_message_echoes_at_most_64_characters(parser: str) -> None:
    model = "x" * 100 + "?" + "y" * 100
    with pytest.raises(GatewayError) as caught:
        PARSERS[parser](model)
    assert "x" * 64 in caught.value.message
    assert "x" * 65 not in caught.value.message and "y" not in caught.value.message.split(":", 1)[0]


def test_gemini_models_prefix_is_dropped_before_the_check() -> None:
    assert _gemini_chat("models/gemini-2.5-flash").model == "gemini-2.5-flash"
    with pytest.raises(GatewayError):
        _gemini_chat("models/../files")
