"""Envoy's control plane: its configuration rendered from gateway.yaml (listeners, clusters, pools,
TLS, credentials, local replies, the ready port), written atomically, applied to a running Envoy by
version, and the client of its admin API. It reads the config and the provider kinds, never the
request path."""
