"""Per provider kind, one record: its wire format, the client APIs it serves as they are, its
paths, how its credential is sent, whether it needs a key or answers locally, which options of
gateway.yaml it does not take, and which request parameters its format cannot carry. Everything that depends on the kind reads it here: the config's
schema and checks, the Envoy rendering, the request path.

Plain data over plain values (no config object), so the config package can read it: paths are
built from the provider's base path, its Azure api-version, the wire format, the operation and the
model. A client whose API the provider serves gets passthrough (its own bytes, only the model
renamed); any other client's request is rendered from the canonical model in the kind's `format`.

`base_url` is the API root as the provider's official SDK knows it:
OpenAI `https://api.openai.com/v1`, Anthropic `https://api.anthropic.com`,
Gemini `https://generativelanguage.googleapis.com`, Azure OpenAI
`https://<resource>.openai.azure.com` (with `azure.api_version`), Bedrock
`https://bedrock-runtime.<region>.amazonaws.com` (the default, from `bedrock.region`); Vertex AI's host follows
`vertex.location` (`https://aiplatform.googleapis.com` for `global`), and its project and location
become part of the base path.

A kind whose wire format follows the model (Vertex AI: Gemini models in Gemini's format, Claude
models in Anthropic's, embedding models in its own `:predict`) names a record per model family in
`by_model`: every question about one request is asked of the record for its model (`for_model`),
whether the model embeds among them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from extproc.errors import GatewayError

ANTHROPIC_VERSION = "2023-06-01"
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"  # Claude on Vertex AI: in the body, not a header
# Azure OpenAI has the Responses API from this api-version on (YYYY-MM-DD[-preview] compares as text)
AZURE_RESPONSES_SINCE = "2025-03-01"
# Azure's v1 API (/openai/v1/...): the model in the body, no dated api-version ("preview" still sends one)
AZURE_V1_VERSIONS = frozenset({"v1", "preview"})

# (base_path, azure api-version, api, operation, model, stream, sse): `api` is the wire format the
# request is in (a formats.endpoint.Format), `operation` a formats.endpoint.Operation; sse=False
# asks Gemini for its JSON-array stream
PathBuilder = Callable[[str, str | None, str, str, str, bool, bool], str]


@dataclass(frozen=True, slots=True)
class Credential:
    """How a kind sends the operator's key: `header: prefix + key`."""

    header: str
    prefix: str = ""
    # an OAuth2 access token the gateway mints and refreshes itself (extproc/tokens), not a configured key
    minted: bool = False


@dataclass(frozen=True, slots=True)
class ProviderKind:
    name: str
    format: str  # the API a canonical request is rendered in (a formats.endpoint.ProviderApi)
    path: PathBuilder
    credential: Credential | None  # None: nothing is sent upstream (the kind answers locally)
    needs_key: bool  # a provider of this kind is refused without api_key_env or api_key_file
    gen_ai_name: str  # gen_ai.provider.name of OpenTelemetry's GenAI conventions (the API's flavour)
    fixed_headers: tuple[tuple[str, str], ...] = ()  # sent on every request unless the client's own is kept
    passthrough_headers: frozenset[str] = frozenset()  # a same-API client's own headers that are forwarded
    also_serves: frozenset[str] = frozenset()  # client APIs passed through besides `format`
    passthrough_query: bool = False  # a same-API client's query string is forwarded (Anthropic's ?beta=true)
    answers_locally: bool = False  # the ext_proc answers itself: no cluster, no pool, no breaker, no upstream
    takes_azure: bool = False  # `azure:` (Azure OpenAI's deployments, api-version and api-key header) applies
    # The canonical request parameters the kind's format has no field for, said only here: a request
    # rendered for it leaves them out, named, or is refused, per the provider's `unsupported` policy.
    # (A request rendered in an `also_serves` API is that API's own client's: it asks for none of
    # the parameters that API lacks beyond these.)
    unsupported: frozenset[str] = frozenset()
    # The provider API spoken for one model, from the provider's own choice (Bedrock's `bedrock.api`):
    # None: always `format`. An API named in PASSED_THROUGH serves that client API's own bytes.
    api_for_model: Callable[[str, str], str] | None = None
    signed_by_envoy: bool = False  # the request is SigV4-signed by Envoy (aws_credentials), not given a key
    # The answer's stream is AWS event-stream frames and its errors AWS's JSON, never the client's own
    aws_wire: bool = False
    default_base_url: str = ""  # `{region}` filled from the provider's region
    # The record for one model, where the wire format follows the model family (None: this one for all)
    by_model: Callable[[str], ProviderKind] | None = None
    model_in_body: bool = True  # False: the path alone names the model (Vertex AI: Claude refuses `model`)
    body_fields: tuple[tuple[str, str], ...] = ()  # set in every request body, replacing a client's own
    takes_vertex: bool = False  # `vertex:` (project, location, credentials) applies
    # The provider's API root from its configured base_url (may be "") and its options of gateway.yaml;
    # None: the base_url as given
    api_root: Callable[[str, Mapping[str, Any]], str] | None = None
    # The models it has an embeddings API for (None: every model, where its format has one)
    embeds: Callable[[str], bool] | None = None
    # The most inputs one embeddings request may carry (None: the client format's own bound)
    embedding_inputs: int | None = None
    # The models its own count operation counts for, where it has one (None: every model)
    counts: Callable[[str], bool] | None = None
    # A header of its answers that carries the input tokens it counted (Bedrock's InvokeModel)
    input_tokens_header: str = ""
    # An Anthropic client's `anthropic-beta` values on another service: a client's name -> the
    # service's name for the same beta (a provider's `anthropic_betas` narrows them further)
    beta_renames: tuple[tuple[str, str], ...] = ()
    beta_header: bool = False  # they go in an `anthropic-beta` header (else in the body, or nowhere)
    # The model a client names is a deployment's name, not a model's (Azure OpenAI): its answer names
    # the model, and only then can it be priced
    names_deployments: bool = False

    def for_model(self, model: str) -> ProviderKind:
        return self.by_model(model) if self.by_model is not None else self


# A provider API that is a client API spoken on another service: the client API whose own bytes it takes
PASSED_THROUGH: dict[str, str] = {"bedrock-invoke": "anthropic"}


def _segment(model: str, safe: str = "") -> str:
    """A model as one path segment: `/`, `?`, `#` and `:` can never reach another path or the query."""
    # quote() keeps dots, and a "." or ".." segment would be resolved away by any URL normaliser
    if model in (".", ".."):
        raise GatewayError("invalid_request", "a model name cannot be '.' or '..'", param="model")
    return quote(model, safe=safe)


_OPENAI_PATHS = {"chat": "/chat/completions", "embeddings": "/embeddings", "models": "/models"}
_RESPONSES_PATHS = {"chat": "/responses", "count_tokens": "/responses/input_tokens"}


def _openai_path(base: str, version: str | None, api: str, operation: str, model: str, stream: bool, sse: bool) -> str:
    return base + (_RESPONSES_PATHS if api == "responses" else _OPENAI_PATHS)[operation]


def _azure_path(base: str, version: str | None, api: str, operation: str, model: str, stream: bool, sse: bool) -> str:
    if version in AZURE_V1_VERSIONS:  # the v1 API: OpenAI's paths under /openai/v1, the model in the body
        path = f"{base}/openai/v1" + (_RESPONSES_PATHS if api == "responses" else _OPENAI_PATHS)[operation]
        return path if version == "v1" else f"{path}?api-version={version}"
    query = f"api-version={quote(version or '', safe='')}"
    if operation == "models":
        return f"{base}/openai/models?{query}"
    if api == "responses":  # the model (the deployment) is named in the body
        return f"{base}/openai{_RESPONSES_PATHS[operation]}?{query}"
    suffix = "chat/completions" if operation == "chat" else "embeddings"
    return f"{base}/openai/deployments/{_segment(model)}/{suffix}?{query}"


_ANTHROPIC_PATHS = {"models": "/v1/models", "count_tokens": "/v1/messages/count_tokens"}


def _anthropic_path(
    base: str, version: str | None, api: str, operation: str, model: str, stream: bool, sse: bool
) -> str:
    return base + _ANTHROPIC_PATHS.get(operation, "/v1/messages")


def _gemini_path(base: str, version: str | None, api: str, operation: str, model: str, stream: bool, sse: bool) -> str:
    root = f"{base}/v1beta/models"
    if operation == "models":
        return root
    # the path already says models/: a configured "models/gemini-x" must not become models%2F...
    segment = _segment(model.removeprefix("models/"))
    if operation == "embeddings":
        return f"{root}/{segment}:batchEmbedContents"
    if operation == "count_tokens":
        return f"{root}/{segment}:countTokens"
    method = ("streamGenerateContent?alt=sse" if sse else "streamGenerateContent") if stream else "generateContent"
    return f"{root}/{segment}:{method}"


def _bedrock_path(base: str, version: str | None, api: str, operation: str, model: str, stream: bool, sse: bool) -> str:
    """`/model/{id}/converse[-stream]` or, for Claude's Messages API and embeddings,
    `/invoke[-with-response-stream]`; a count `/count-tokens`, on the foundation model's own id."""
    if model in (".", ".."):
        raise GatewayError("invalid_request", "a model name cannot be '.' or '..'", param="model")
    if operation == "count_tokens":
        return f"{base}/model/{quote(_CROSS_REGION.sub('', model), safe='')}/count-tokens"
    if operation == "embeddings" or api == "bedrock-invoke":  # embeddings are InvokeModel's, never streamed
        operation_path = "invoke-with-response-stream" if stream else "invoke"
    else:
        operation_path = "converse-stream" if stream else "converse"
    return f"{base}/model/{quote(model, safe='')}/{operation_path}"


# Claude's ids: bare, behind a cross-region prefix (us., eu., global.) or at the end of an ARN
_CLAUDE_ID = re.compile(r"(?:^|[./])anthropic\.")
# A cross-region inference profile's prefix: CountTokens takes the foundation model's own id
_CROSS_REGION = re.compile(r"^(?:us|us-gov|eu|apac|jp|au|ca|global)\.")
# The embedding families rendered for InvokeModel (formats.bedrock.embeddings): Titan Text (its
# version in the group) and Cohere Embed
BEDROCK_TITAN_EMBED = re.compile(r"(?:^|[./])amazon\.titan-embed-text-v(\d+)")
BEDROCK_COHERE_EMBED = re.compile(r"(?:^|[./])cohere\.embed-")


def _bedrock_embeds(model: str) -> bool:
    return BEDROCK_TITAN_EMBED.search(model) is not None or BEDROCK_COHERE_EMBED.search(model) is not None


def _bedrock_counts(model: str) -> bool:
    """CountTokens counts for Claude's models (an application inference profile names none: estimated)."""
    return _CLAUDE_ID.search(model) is not None


def bedrock_api(choice: str, model: str) -> str:
    """`bedrock.api`: converse for every family, invoke (Claude's own Messages API), or auto: invoke
    for a Claude model id, converse for any other (an application inference profile's ARN names no
    model: converse)."""
    if choice == "invoke" or (choice == "auto" and _CLAUDE_ID.search(model) is not None):
        return "bedrock-invoke"
    return "bedrock-converse"


_VERTEX_PUBLISHER = {"gemini": "google", "anthropic": "anthropic", "vertex-predict": "google"}


def _vertex_path(base: str, version: str | None, api: str, operation: str, model: str, stream: bool, sse: bool) -> str:
    """`base` ends in /v1/projects/{project}/locations/{location} (`_vertex_root`)."""
    if (operation == "embeddings") != (api == "vertex-predict") or operation == "models":
        raise GatewayError("invalid_request", f"model {model} on Vertex AI has no {operation} API", param="model")
    root = f"{base}/publishers/{_VERTEX_PUBLISHER[api]}/models"
    if api == "vertex-predict":
        return f"{root}/{_segment(model.removeprefix('models/'))}:predict"
    if api == "anthropic":
        if operation == "count_tokens":  # one endpoint for every Claude model, named in the body
            return f"{root}/count-tokens:rawPredict"
        # Claude's versions are written claude-sonnet-4@20250514, as Google's documentation does
        return f"{root}/{_segment(model, '@')}:{'streamRawPredict' if stream else 'rawPredict'}"
    segment = _segment(model.removeprefix("models/"))
    if operation == "count_tokens":
        return f"{root}/{segment}:countTokens"
    method = ("streamGenerateContent?alt=sse" if sse else "streamGenerateContent") if stream else "generateContent"
    return f"{root}/{segment}:{method}"


def vertex_host(location: str) -> str:
    """Vertex AI's endpoint for a location: the global one, a multi-region's or a region's."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in ("us", "eu"):
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def _vertex_root(base_url: str, options: Mapping[str, Any]) -> str:
    """https://{host}/v1/projects/{project}/locations/{location}: the host from the location unless given."""
    vertex = options.get("vertex") or {}
    project, location = str(vertex.get("project", "")), str(vertex.get("location", "global"))
    host = base_url.rstrip("/") or vertex_host(location)
    return f"{host}/v1/projects/{quote(project, safe='')}/locations/{quote(location, safe='')}"


_BEARER = Credential("authorization", "Bearer ")
_OPENAI_HEADERS = frozenset({"openai-beta"})
_RESPONSES = frozenset({"responses"})
# What each format cannot carry of the canonical request's plain parameters: the one declaration,
# which the provider sides check (formats.provider_params.ASKED says when each counts as asked: n
# only above 1, a penalty only when not 0, parallel_tool_calls only when false)
_OPENAI_LACKS = frozenset({"top_k"})
_RESPONSES_LACKS = frozenset({"stop", "n", "seed", "presence_penalty", "frequency_penalty", "top_k"})
_ANTHROPIC_LACKS = frozenset({"n", "seed", "presence_penalty", "frequency_penalty"})
_GEMINI_LACKS = frozenset({"parallel_tool_calls"})

OPENAI = ProviderKind(
    "openai",
    "openai",
    _openai_path,
    _BEARER,
    True,
    "openai",
    passthrough_headers=_OPENAI_HEADERS,
    also_serves=_RESPONSES,
    takes_azure=True,
    unsupported=_OPENAI_LACKS,
)
# A Chat-Completions-only server: a Responses client is served through the canonical model.
OPENAI_COMPATIBLE = ProviderKind(
    "openai-compatible",
    "openai",
    _openai_path,
    _BEARER,
    False,
    "openai",
    passthrough_headers=_OPENAI_HEADERS,
    takes_azure=True,
    unsupported=_OPENAI_LACKS,
)
# A server that speaks only the Responses API: every other client is served through the canonical model.
OPENAI_RESPONSES = ProviderKind(
    "openai-responses",
    "responses",
    _openai_path,
    _BEARER,
    False,
    "openai",
    passthrough_headers=_OPENAI_HEADERS,
    unsupported=_RESPONSES_LACKS,
)
ANTHROPIC = ProviderKind(
    "anthropic",
    "anthropic",
    _anthropic_path,
    Credential("x-api-key"),
    True,
    "anthropic",
    fixed_headers=(("anthropic-version", ANTHROPIC_VERSION),),
    passthrough_headers=frozenset({"anthropic-version", "anthropic-beta"}),
    passthrough_query=True,
    unsupported=_ANTHROPIC_LACKS,
)
GEMINI = ProviderKind(
    "gemini", "gemini", _gemini_path, Credential("x-goog-api-key"), True, "gcp.gemini", unsupported=_GEMINI_LACKS
)
# Vertex AI: Gemini models on publishers/google in Gemini's format, Claude models on publishers/anthropic
# in Anthropic's (rawPredict: `anthropic_version` in the body, the model only in the path), behind an
# OAuth2 access token the gateway mints with google-auth and Envoy injects.
_GOOGLE_TOKEN = Credential("authorization", "Bearer ", minted=True)


def _no_model(model: str) -> bool:
    """Vertex's Gemini and Claude models: no embeddings (its embedding models are their own family)."""
    return False


VERTEX_GEMINI = ProviderKind(
    "vertex",
    "gemini",
    _vertex_path,
    _GOOGLE_TOKEN,
    False,
    "gcp.vertex_ai",
    unsupported=_GEMINI_LACKS,
    model_in_body=False,  # countTokens takes the request's fields flat, not in generateContentRequest
    takes_vertex=True,
    api_root=_vertex_root,
    embeds=_no_model,
)
# Bedrock and Vertex AI name Anthropic's advanced-tool-use beta (tool search) tool-search-tool.
_TOOL_SEARCH = (("advanced-tool-use-2025-11-20", "tool-search-tool-2025-10-19"),)
VERTEX_ANTHROPIC = ProviderKind(
    "vertex",
    "anthropic",
    _vertex_path,
    _GOOGLE_TOKEN,
    False,
    "gcp.vertex_ai",
    unsupported=_ANTHROPIC_LACKS,
    model_in_body=False,
    body_fields=(("anthropic_version", VERTEX_ANTHROPIC_VERSION),),
    takes_vertex=True,
    api_root=_vertex_root,
    embeds=_no_model,
    beta_renames=_TOOL_SEARCH,
    beta_header=True,
)


# Text embedding models, on `:predict` (gemini-embedding-001 takes one instance a request; Google's
# SDK sends the multimodal gemini-embedding-2 to embedContent instead, which is not served here)
VERTEX_TEXT_EMBEDDINGS = ProviderKind(
    "vertex",
    "vertex-predict",
    _vertex_path,
    _GOOGLE_TOKEN,
    False,
    "gcp.vertex_ai",
    takes_vertex=True,
    api_root=_vertex_root,
)
VERTEX_GEMINI_EMBEDDINGS = dataclasses.replace(VERTEX_TEXT_EMBEDDINGS, embedding_inputs=1)
_TEXT_EMBEDDING = re.compile(r"text-embedding-|text-multilingual-embedding-|textembedding-gecko")
_GEMINI_EMBEDDING = re.compile(r"gemini-embedding-(?:001|exp)")


def _vertex_family(model: str) -> ProviderKind:
    """Claude models (claude-*, publishers/anthropic/models/claude-*) are Anthropic's, the text
    embedding models Vertex's own `:predict`; the rest Gemini's."""
    name = model.rpartition("/")[2]
    if name.startswith("claude"):
        return VERTEX_ANTHROPIC
    if _TEXT_EMBEDDING.match(name):
        return VERTEX_TEXT_EMBEDDINGS
    return VERTEX_GEMINI_EMBEDDINGS if _GEMINI_EMBEDDING.match(name) else VERTEX_GEMINI


VERTEX = ProviderKind(
    "vertex",
    "gemini",
    _vertex_path,
    _GOOGLE_TOKEN,
    False,
    "gcp.vertex_ai",
    unsupported=_GEMINI_LACKS,
    takes_vertex=True,
    api_root=_vertex_root,
    by_model=_vertex_family,
    beta_renames=_TOOL_SEARCH,  # its Claude family's (the record a request for a Claude model gets)
)
# Deterministic answers from the ext_proc itself, for tests and offline development.
MOCK = ProviderKind(
    "mock", "openai", _openai_path, None, False, "mock", answers_locally=True, unsupported=_OPENAI_LACKS
)

# Bedrock Runtime: SigV4 signed by Envoy (aws_credentials) or a Bedrock API key as a bearer.
BEDROCK = ProviderKind(
    "bedrock",
    "bedrock-converse",
    _bedrock_path,
    _BEARER,
    False,
    "aws.bedrock",
    # top_k is carried for Claude and Nova models only: the render decides it by model
    unsupported=frozenset({"n", "seed", "presence_penalty", "frequency_penalty", "parallel_tool_calls"}),
    api_for_model=bedrock_api,
    signed_by_envoy=True,
    aws_wire=True,
    default_base_url="https://bedrock-runtime.{region}.amazonaws.com",
    embeds=_bedrock_embeds,
    counts=_bedrock_counts,
    input_tokens_header="x-amzn-bedrock-input-token-count",
    beta_renames=_TOOL_SEARCH,  # InvokeModel's `anthropic_beta`; Converse's only from a provider's list
)

# Not kinds of their own in gateway.yaml: an openai or openai-compatible provider with `azure:`.
_AZURE_KEY = Credential("api-key")
AZURE = ProviderKind(
    "azure",
    "openai",
    _azure_path,
    _AZURE_KEY,
    False,
    "azure.ai.openai",
    unsupported=_OPENAI_LACKS,
    names_deployments=True,
)
AZURE_WITH_RESPONSES = dataclasses.replace(AZURE, also_serves=_RESPONSES)

KINDS: dict[str, ProviderKind] = {
    kind.name: kind for kind in (OPENAI, OPENAI_COMPATIBLE, OPENAI_RESPONSES, ANTHROPIC, GEMINI, BEDROCK, VERTEX, MOCK)
}
KIND_NAMES: tuple[str, ...] = tuple(KINDS)  # the schema's enum of `providers[].kind`
RECORDS: tuple[ProviderKind, ...] = (
    *KINDS.values(),
    VERTEX_GEMINI,
    VERTEX_ANTHROPIC,
    VERTEX_TEXT_EMBEDDINGS,
    VERTEX_GEMINI_EMBEDDINGS,
    AZURE,
    AZURE_WITH_RESPONSES,
)  # every record kind_for gives

# Every header any kind sends a key in, in one place: a client's own credential in any of them is
# removed before a request leaves (the router pass, and each attempt of a pool in Envoy).
CREDENTIAL_HEADERS: tuple[str, ...] = tuple(
    dict.fromkeys(kind.credential.header for kind in RECORDS if kind.credential is not None)
)

# Every kind's same-API protocol headers: a pool's request keeps them all, and each attempt only
# its own kind's, from a client of its API.
PROTOCOL_HEADERS: frozenset[str] = frozenset().union(*(kind.passthrough_headers for kind in KINDS.values()))

# What Envoy's SigV4 signer adds: an earlier attempt's (a session token among them) never goes on to
# another provider, and a client's never reaches the signer.
AWS_SIGNING_HEADERS: tuple[str, ...] = ("x-amz-date", "x-amz-content-sha256", "x-amz-security-token")


def kind_for(kind: str, azure_api_version: str | None) -> ProviderKind:
    """A provider's record; Azure is an OpenAI-format provider with its own paths and key header,
    and the Responses API from api-version 2025-03-01 on (and in its v1 API)."""
    if azure_api_version:
        responses = azure_api_version in AZURE_V1_VERSIONS or azure_api_version >= AZURE_RESPONSES_SINCE
        return AZURE_WITH_RESPONSES if responses else AZURE
    return KINDS[kind]
