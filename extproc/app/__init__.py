"""The application: the process lifecycle (serve, or run the whole local stack with Envoy), the worker
processes, and reload and restart orchestration over the config, Envoy's control plane and the live
state."""
