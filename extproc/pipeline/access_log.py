"""Stage: one access-log line and the request metrics, once per request whatever happened."""

from __future__ import annotations

from extproc.observe.logs import log_access, monotonic
from extproc.observe.metrics import LATENCY, REQUESTS, TOKENS
from extproc.pipeline.exchange import Exchange
from extproc.pipeline.stage import Stage


class AccessLogStage(Stage):
    name = "access_log"

    def finish(self, ex: Exchange) -> None:
        elapsed = monotonic() - ex.started
        status = str(ex.status or 0)
        REQUESTS.labels(ex.route, ex.provider_name, status).inc()
        LATENCY.labels(ex.route, ex.provider_name, status).observe(elapsed)
        usage = ex.usage if ex.cache_status != "HIT" else None  # a hit cost no provider tokens
        if usage is not None:
            for kind, count in (
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
                ("cached", usage.cached_tokens),
                ("reasoning", usage.reasoning_tokens),
            ):
                if count:
                    TOKENS.labels(ex.provider_name, kind).inc(count)
        log_access(
            request_id=ex.request_id,
            client_address=ex.client_address,
            client=ex.identity.client_id,
            tenant=ex.identity.tenant,
            route=ex.route,
            path=ex.path.partition("?")[0],
            model=ex.model,
            provider=ex.provider_name,
            stream=ex.stream,
            status=ex.status,
            duration_ms=round(elapsed * 1000, 2),
            dropped=ex.dropped or None,
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            cache=ex.cache_status or None,
        )
