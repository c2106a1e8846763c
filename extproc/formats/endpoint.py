"""What a client asked for: its API (wire format), the operation, and Gemini's path-borne details."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Format = Literal["openai", "anthropic", "gemini", "responses"]  # "openai" is Chat Completions (and embeddings)
# The APIs a provider side speaks: every client API, Bedrock's Converse, which no client speaks, and
# Claude's Messages API on Bedrock's InvokeModel (Anthropic's body and answers in AWS's framing), and
# Vertex AI's text embeddings (`:predict`: instances in, predictions out).
ProviderApi = Format | Literal["bedrock-converse", "bedrock-invoke", "vertex-predict"]
Operation = Literal["chat", "embeddings", "models", "count_tokens"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    format: Format
    operation: Operation
    path_model: str | None = None  # Gemini carries the model in the path
    stream: bool = False  # Gemini streams by method, not by body
    sse: bool = True  # Gemini streamGenerateContent without alt=sse answers a JSON array
    batch: bool = False  # Gemini batchEmbedContents

    @property
    def name(self) -> str:
        return f"{self.format}.{self.operation}"
