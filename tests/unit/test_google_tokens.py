"""The main process's Vertex AI token minter: a minted token is written for Envoy with its expiry
beside it, a failed refresh is counted and logged without any token, and a worker refuses a
provider whose token has expired with a 503 carrying retry-after."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.auth.exceptions import RefreshError

from extproc.app.google_tokens import GoogleToken, failure_reason
from extproc.config.model import Provider
from extproc.errors import GatewayError
from extproc.observe.metrics import CREDENTIAL_REFRESH_FAILURES
from extproc.xds.minted_tokens import TokenExpiry, expiry_file
from extproc.xds.render_credentials import secret_file

TOKEN = "ya29.a0AfB_LeakedAccessToken0123456789abcdefghijklmnop"
PROVIDER = Provider("vx", "vertex", base_url="https://aiplatform.googleapis.com/v1/projects/p/locations/global")


class StubCredentials:
    """google-auth credentials as the minter uses them: refresh() sets token and expiry, or raises."""

    def __init__(self, lifetime_s: float, error: Exception | None = None) -> None:
        self.lifetime_s, self.error = lifetime_s, error
        self.token: str | None = None
        self.expiry: datetime | None = None

    def refresh(self, request: object) -> None:
        if self.error is not None:
            raise self.error
        self.token = TOKEN
        self.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=self.lifetime_s)


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record whole: its message and each extra field the JSON log line would carry."""
    return " ".join(str(vars(record)) for record in caplog.records)


async def _first_attempt(token: GoogleToken) -> None:
    task = asyncio.ensure_future(token.run())
    try:
        await asyncio.wait_for(token.first_attempt.wait(), 10)
    finally:
        task.cancel()


def test_a_minted_token_is_written_for_envoy_with_its_expiry_and_is_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = GoogleToken(PROVIDER, tmp_path)
    token._credentials = StubCredentials(3600)
    with caplog.at_level(logging.DEBUG):
        asyncio.run(_first_attempt(token))
    sds = secret_file(PROVIDER, tmp_path)
    assert TOKEN in sds.read_text() and sds.stat().st_mode & 0o077 == 0
    expires_at = float(expiry_file(PROVIDER, tmp_path).read_text())
    assert abs(expires_at - (time.time() + 3600)) < 60
    assert TOKEN not in expiry_file(PROVIDER, tmp_path).read_text()
    assert "minted an access token" in caplog.text and TOKEN not in _logged(caplog)


def test_a_failed_refresh_is_counted_and_logged_without_the_token_its_error_quotes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = CREDENTIAL_REFRESH_FAILURES.labels("vx")._value.get()
    token = GoogleToken(PROVIDER, tmp_path)
    token._credentials = StubCredentials(3600, RefreshError(f"invalid_grant: token {TOKEN} was revoked", {}))
    with caplog.at_level(logging.DEBUG):
        asyncio.run(_first_attempt(token))
    assert CREDENTIAL_REFRESH_FAILURES.labels("vx")._value.get() == before + 1
    assert "refreshing the provider's access token failed" in caplog.text
    logged = _logged(caplog)
    assert "invalid_grant" in logged and "RefreshError" in logged
    assert TOKEN not in logged and TOKEN[:20] not in logged
    assert not secret_file(PROVIDER, tmp_path).exists()  # nothing was written


@pytest.mark.parametrize(
    "message",
    [
        f"('invalid_grant: {TOKEN}', {{}})",
        f"Bearer {TOKEN}\nsecond line",
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJnYXRld2F5In0.c2lnbmF0dXJlX29mX3RoZV9qd3Q",
    ],
)
def test_a_failure_reason_masks_anything_token_like(message: str) -> None:
    reason = failure_reason(Exception(message))
    assert "ya29" not in reason and "eyJ" not in reason and "[...]" in reason


def test_a_worker_refuses_an_expired_or_unminted_token_with_a_503_and_retry_after(tmp_path: Path) -> None:
    expiry = TokenExpiry()
    with pytest.raises(GatewayError) as none_yet:
        expiry.check(PROVIDER, tmp_path)
    assert none_yet.value.status == 503 and none_yet.value.code == "provider_credential_expired"
    assert dict(none_yet.value.headers)["retry-after"] == "5"
    expiry_file(PROVIDER, tmp_path).write_text(f"{time.time() + 600}\n")
    fresh = TokenExpiry()
    fresh.check(PROVIDER, tmp_path)  # a live token: nothing raised
    expiry_file(PROVIDER, tmp_path).write_text(f"{time.time() - 1}\n")
    with pytest.raises(GatewayError):
        TokenExpiry().check(PROVIDER, tmp_path)
    assert TOKEN not in none_yet.value.message
