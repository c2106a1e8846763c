"""What the ext_proc and Envoy agree on: internal header names, stream metadata and attributes.

Internal headers (`x-gw-*`) carry request-scoped state between the router pass
and the upstream pass through Envoy. A client can never set them: the router
pass removes every one it sends, and the upstream pass removes them all before
a provider sees the request.
"""

from __future__ import annotations

INTERNAL_PREFIX = "x-gw-"
ROUTE_HEADER = "x-gw-cluster"  # Envoy routes on it: the provider's cluster
PROVIDER_HEADER = "x-gw-provider"  # added by Envoy to the answer: which provider answered
API_HEADER = "x-gw-api"  # the client's endpoint (openai.chat, gemini.embeddings, ...)
MODEL_HEADER = "x-gw-model"  # the provider's model name
STREAM_HEADER = "x-gw-stream"  # "1" when the provider is asked to stream
BODY_FORMAT_HEADER = "x-gw-body-format"  # the wire format the body was rendered in
# Set by the upstream pass to the provider of the attempt, for the credential filters that match
# on it; removed by Envoy before the request leaves (never x-gw-*: those the pass itself removes).
ATTEMPT_PROVIDER_HEADER = "x-gateway-attempt-provider"

# A request's headers: over these the router pass answers 431 in the client's format. Envoy's codec
# takes up to its own caps (render_listener), above which it refuses the request before any path
# is read (its answer then carries every API's error fields: xds/render_local_reply.py).
HEADER_BYTES_LIMIT = 60 * 1024  # Envoy's own default limit
HEADER_COUNT_LIMIT = 100
ENVOY_HEADER_KB_CAP = 96
ENVOY_HEADER_COUNT_CAP = 150

DROPPED_HEADER = "x-gateway-dropped-features"
TOKEN_COUNT_HEADER = "x-gateway-token-count"  # "estimate": a count the gateway made, not the provider
# Envoy's count of tries, on each attempt (include_request_attempt_count) and on the answer
# (include_attempt_count_in_response, removed before the client gets it).
ATTEMPT_COUNT_HEADER = "x-envoy-attempt-count"

# gRPC stream metadata: which pass (and listener) a stream belongs to.
PASS_METADATA_KEY = "x-gw-pass"
OBSERVER_PASS = "observer"  # its value on the observer's streams
LISTENER_METADATA_KEY = "x-gw-listener"
# On TCP, the shared secret Envoy proves itself with (xds/render_peer.py).
EXTPROC_TOKEN_HEADER = "x-gw-extproc-token"

METADATA_NAMESPACE = "llm_gateway"
# A pooled request's facts, from the router pass to every attempt's upstream pass, as dynamic
# metadata: header changes made in one attempt stay for the next (measured), metadata is never sent.
REQUEST_METADATA_NAMESPACE = "llm_gateway.request"
POOL_KEY = "pool"  # the route's name
CLIENT_PATH_KEY = "client_path"  # the client's own path (its API)
STREAM_KEY = "stream"  # the client asked for a stream
READ_AT_KEY = "read_at"  # time.monotonic() once its body was read (one clock for every process of the host)
OBSERVE_KEY = "observe"  # a same-API stream the observer reads: its key in the ext_proc (router pass -> observer)
# Set by the router pass on an answer the observer reads; the observer filter runs only on those,
# and Envoy removes the header before the answer leaves.
OBSERVE_HEADER = "x-gw-observe"
ATTRIBUTES_KEY = "envoy.filters.http.ext_proc"
PROVIDER_ATTRIBUTE = f"xds.upstream_host_metadata.filter_metadata['{METADATA_NAMESPACE}']['provider']"
