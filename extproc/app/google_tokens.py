"""OAuth2 access tokens for Vertex AI providers, minted with google-auth in the main process.

One task per provider: a token from the provider's service-account key file, or from Application
Default Credentials (workload identity through the metadata server on GKE; `GCE_METADATA_HOST`
points google-auth elsewhere), written as the SDS secret Envoy's credential injector sends
(extproc/xds/minted_tokens.py). A token is refreshed at 80% of its lifetime. A refresh that fails
keeps the token Envoy holds, is counted and retried with backoff; once that token expires the
workers answer 503 until a refresh succeeds. No token is ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from datetime import UTC
from pathlib import Path
from typing import Any

from extproc.config.model import GatewayConfig, Provider
from extproc.observe.metrics import CREDENTIAL_REFRESH_FAILURES, CREDENTIAL_REFRESHES
from extproc.providers import kind_of
from extproc.xds.minted_tokens import write_token
from extproc.xds.render_credentials import secrets_dir

log = logging.getLogger(__name__)

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_AT = 0.8  # of a token's lifetime
_DEFAULT_LIFETIME_S = 3600.0  # a token without an expiry (none seen) is taken to last Google's hour
_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
# Anything a token could be (ya29..., a JWT's parts, a refresh token) in an error's text: never logged
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9._~+=-]{24,}")


def failure_reason(exc: BaseException) -> str:
    """The first line of an exception's message, anything token-like masked, for the log."""
    first = next(iter(str(exc.args[0] if exc.args else "").splitlines()), "")
    return _TOKEN_LIKE.sub("[...]", first)[:200]


def minted(provider: Provider) -> bool:
    credential = kind_of(provider).credential
    return credential is not None and credential.minted


class GoogleToken:
    """One provider's credentials and the refresh loop writing its tokens."""

    def __init__(self, provider: Provider, directory: Path) -> None:
        self.provider = provider
        self.directory = directory
        self.first_attempt = asyncio.Event()  # set once the first mint succeeded or failed
        self._credentials: Any = None

    def _mint(self) -> tuple[str, float]:
        """(token, expires at in epoch seconds); blocking: run in a thread."""
        import google.auth
        import google.auth.transport.requests

        if self._credentials is None:
            if self.provider.vertex_credentials_file:
                self._credentials, _ = google.auth.load_credentials_from_file(
                    self.provider.vertex_credentials_file, scopes=[CLOUD_PLATFORM]
                )
            else:
                self._credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
        self._credentials.refresh(google.auth.transport.requests.Request())
        expiry = self._credentials.expiry  # naive UTC
        expires_at = expiry.replace(tzinfo=UTC).timestamp() if expiry else time.time() + _DEFAULT_LIFETIME_S
        return str(self._credentials.token), expires_at

    async def run(self) -> None:
        name = self.provider.name
        failures = 0
        while True:
            try:
                token, expires_at = await asyncio.to_thread(self._mint)
            except Exception as exc:  # google-auth's RefreshError, a transport error, an unreadable key file
                CREDENTIAL_REFRESH_FAILURES.labels(name).inc()
                wait = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
                failures += 1
                log.warning(
                    "refreshing the provider's access token failed; the last token is kept until it expires",
                    extra={
                        "provider": name,
                        "error": type(exc).__name__,
                        "reason": failure_reason(exc),
                        "retry_in_s": wait,
                    },
                )
                self.first_attempt.set()
                await asyncio.sleep(wait)
                continue
            failures = 0
            await asyncio.to_thread(write_token, self.provider, self.directory, token, expires_at)
            del token
            CREDENTIAL_REFRESHES.labels(name).inc()
            lifetime = max(0.0, expires_at - time.time())
            log.info("minted an access token", extra={"provider": name, "expires_in_s": round(lifetime)})
            self.first_attempt.set()
            await asyncio.sleep(max(1.0, lifetime * REFRESH_AT))


def _changed_at(path: str | None) -> int:
    """A key file replaced in place (a rotated Kubernetes secret) is new credentials."""
    try:
        return os.stat(path).st_mtime_ns if path else 0
    except OSError:
        return 0


class GoogleTokens:
    """The refresh tasks of the config's Vertex AI providers, following reloads."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, str | None, int, str], tuple[GoogleToken, asyncio.Task[None]]] = {}

    async def follow(self, config: GatewayConfig, first_within_s: float = 10.0) -> None:
        """Start a task for each new minted provider (waiting up to `first_within_s` for their first
        tokens, so Envoy starts with them), stop those of providers gone or changed."""
        directory = secrets_dir(Path(config.envoy.xds_dir))
        wanted = {
            (p.name, p.vertex_credentials_file, _changed_at(p.vertex_credentials_file), str(directory)): p
            for p in config.providers
            if minted(p)
        }
        for key in [key for key in self._running if key not in wanted]:
            self._running.pop(key)[1].cancel()
        started = []
        for key, provider in wanted.items():
            if key not in self._running:
                token = GoogleToken(provider, directory)
                self._running[key] = (token, asyncio.ensure_future(token.run()))
                started.append(token)
        if started:
            with contextlib.suppress(asyncio.TimeoutError):
                waits = [token.first_attempt.wait() for token in started]
                await asyncio.wait_for(asyncio.gather(*waits), first_within_s)

    def stop(self) -> None:
        for _, task in self._running.values():
            task.cancel()
        self._running.clear()
