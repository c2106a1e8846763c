"""Stage: one access-log line and the request metrics, once per request whatever happened."""

from __future__ import annotations

from extproc.observe.logs import log_access, monotonic
from extproc.observe.metrics import LATENCY, REQUESTS
from extproc.pipeline.exchange import Exchange
from extproc.pipeline.stage import Stage


class AccessLogStage(Stage):
    name = "access_log"

    def finish(self, ex: Exchange) -> None:
        elapsed = monotonic() - ex.started
        status = str(ex.status or 0)
        REQUESTS.labels(ex.route, ex.provider_name, status).inc()
        LATENCY.labels(ex.route, ex.provider_name, status).observe(elapsed)
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
        )
