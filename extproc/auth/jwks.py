"""Token signing keys from a JWKS, in a file or at a URL, decoded once and cached by kid.

File: re-read when it changes (looked at once per second). URL: fetched
with aiohttp, refreshed lazily every `refresh_s`, and on demand when a token
names an unknown kid (the verifier rate-limits that). A failed fetch or a
bad file keeps the keys already held.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from extproc.auth.errors import AuthError
from extproc.auth.filewatch import ChangeCheck

log = logging.getLogger(__name__)

KeySet = Mapping[str, PyJWK]  # kid ("" for a key without one) -> decoded key
FETCH_TIMEOUT_S = 5.0
_RETRY_AFTER_FAILURE_S = 10.0


class KeySource(Protocol):
    async def keys(self, refresh: bool = False) -> KeySet:
        """The current keys; `refresh` asks for a fresh copy now (unknown kid)."""
        ...


class JwksError(ValueError):
    pass


def parse_jwks(data: Any) -> dict[str, PyJWK]:
    """A JWKS document -> signing keys by kid. Symmetric (oct) keys are refused: HS256 uses its own secret."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksError("not a JWKS: no keys list")
    keys: dict[str, PyJWK] = {}
    for item in data["keys"]:
        if not isinstance(item, dict) or item.get("kty") == "oct" or item.get("use", "sig") != "sig":
            continue
        try:
            key = PyJWK(item)
        except PyJWKError:
            continue  # a key type we cannot use must not hide the others
        keys[str(item.get("kid", ""))] = key
    if not keys:
        raise JwksError("the JWKS holds no usable signing key")
    return keys


class JwksFile:
    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._check = ChangeCheck(path, 1.0, clock)
        self._keys: dict[str, PyJWK] = {}

    async def keys(self, refresh: bool = False) -> KeySet:
        # A small local file: reading it inline is cheaper than a thread hop.
        if (new_stamp := self._check.due(force=refresh)) is not None:
            self._check.loaded = new_stamp
            try:
                self._keys = parse_jwks(json.loads(self._check.path.read_bytes()))
            except (OSError, ValueError) as error:
                log.error(
                    "JWKS file rejected; keeping the previous keys",
                    extra={"path": str(self._check.path), "error": str(error)},
                )
        if not self._keys:
            raise AuthError("jwks_unavailable")
        return self._keys


class JwksUrl:
    def __init__(self, url: str, refresh_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("jwks_url must be an http(s) URL")
        self._url = url
        self._refresh_s = refresh_s
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._next_fetch = float("-inf")
        self._inflight: asyncio.Task[None] | None = None

    async def keys(self, refresh: bool = False) -> KeySet:
        if refresh or self._clock() >= self._next_fetch:
            await self._fetch_once()
        if not self._keys:
            raise AuthError("jwks_unavailable")
        return self._keys

    async def _fetch_once(self) -> None:
        # Concurrent requests share one fetch.
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._fetch())
        await asyncio.shield(self._inflight)

    async def _fetch(self) -> None:
        try:
            timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(self._url) as response:
                response.raise_for_status()
                self._keys = parse_jwks(await response.json(content_type=None))
            self._next_fetch = self._clock() + self._refresh_s
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            self._next_fetch = self._clock() + min(_RETRY_AFTER_FAILURE_S, self._refresh_s)
            log.error(
                "JWKS fetch failed; keeping the cached keys",
                extra={"url": _safe_url(self._url), "error": type(error).__name__, "cached": len(self._keys)},
            )


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{parts.path}"  # no userinfo or query: either may hold a secret
