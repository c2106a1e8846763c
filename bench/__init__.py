"""Load benchmarks of the gateway against a plain Envoy hop (`make bench`)."""
