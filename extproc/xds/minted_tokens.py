"""Access tokens the gateway mints (Vertex AI's OAuth2 tokens), handed to Envoy as SDS secrets.

The main process writes each token into the provider's SDS file, which Envoy's credential injector
reads (a rename is picked up without a restart), and its expiry into a file beside it. Envoy keeps
injecting the last token it read forever, so the expiry is the ext_proc's to enforce: a worker reads
that file (never the token) and answers 503 once the token it would go out with has expired.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from extproc.config.model import Provider
from extproc.errors import GatewayError
from extproc.providers import kind_of
from extproc.xds.files import write_atomically, write_sds_file
from extproc.xds.render_credentials import secret_file, secret_resource, secrets_dir

# How often a worker looks at an expiry file again: a refreshed token is seen this late at most
_RECHECK_S = 1.0
# A token this close to its expiry is not sent: it could expire on the way
_MARGIN_S = 1.0
# What a client is told to wait when no token is known to come
_RETRY_AFTER_S = 5


def expiry_file(provider: Provider, directory: Path) -> Path:
    return directory / f"{secret_file(provider, directory).stem}.expires"


def write_token(provider: Provider, directory: Path, token: str, expires_at: float) -> None:
    """The token for Envoy first, then its expiry for the workers (both replaced whole)."""
    write_sds_file(secret_file(provider, directory), secret_resource(provider, token))
    write_atomically(expiry_file(provider, directory), f"{expires_at:.3f}\n", 0o644)


class TokenExpiry:
    """A worker's view of the minted tokens' expiry, read again at most once a second per provider."""

    __slots__ = ("_read",)

    def __init__(self) -> None:
        self._read: dict[Path, tuple[float, float]] = {}  # expiry file -> (expires_at, read at, monotonic)

    def check(self, provider: Provider, directory: Path) -> None:
        """Raise the client's 503 (with retry-after) when the provider's token has expired or none was minted."""
        now = time.monotonic()
        path = expiry_file(provider, directory)
        known = self._read.get(path)
        if known is None or now - known[1] > _RECHECK_S:
            known = (_expires_at(path), now)
            self._read[path] = known
        left = known[0] - time.time()
        if left > _MARGIN_S:
            return
        raise GatewayError(
            "unavailable",
            f"the gateway has no valid access token for provider {provider.name}: refreshing it failed; retry later",
            code="provider_credential_expired",
            headers=(("retry-after", str(_RETRY_AFTER_S if left <= 0 else max(1, math.ceil(left)))),),
        )


def _expires_at(path: Path) -> float:
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return 0.0  # no token minted yet


TOKEN_EXPIRY = TokenExpiry()  # one per process: each worker reads the files the main process writes


def require_live_token(provider: Provider, xds_dir: str) -> None:
    """For a provider whose token the gateway mints: a 503 unless it holds one that has not expired."""
    credential = kind_of(provider).credential
    if credential is not None and credential.minted:
        TOKEN_EXPIRY.check(provider, secrets_dir(Path(xds_dir)))
