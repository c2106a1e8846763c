"""Where each client SDK sends its key, and removing Gemini's `?key=` before the path travels on.

OpenAI SDK: `Authorization: Bearer`; Anthropic SDK: `x-api-key`; google-genai:
`x-goog-api-key` or `?key=`; Azure OpenAI style: `api-key`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from extproc.auth.errors import AuthError
from extproc.provider_kinds import CREDENTIAL_HEADERS

CredentialPlace = str  # "authorization", another of CREDENTIAL_HEADERS, or "query"

# Every header a provider kind reads a key from: a client of that API sends its key there too.
_HEADER_PLACES = tuple(name for name in CREDENTIAL_HEADERS if name != "authorization")


@dataclass(frozen=True, slots=True)
class Credential:
    place: CredentialPlace
    value: str = field(repr=False)  # a secret: never in a repr


def find_credential(headers: Mapping[str, str], path: str) -> Credential | None:
    """The request's credential, or None; AuthError("malformed") on a non-bearer scheme or on disagreement."""
    found: list[Credential] = []
    if bearer := _bearer(headers.get("authorization", "")):
        found.append(Credential("authorization", bearer))
    for place in _HEADER_PLACES:
        if value := headers.get(place, "").strip():
            found.append(Credential(place, value))
    found.extend(Credential("query", value) for value in _key_params(path) if value)
    if not found:
        return None
    if len({credential.value for credential in found}) > 1:
        raise AuthError("malformed", "conflicting credentials")
    return found[0]


def strip_key_param(path: str) -> str:
    """`path` without any `key` query parameter; the rest byte-for-byte. The same object when there is none."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    params = query.split("&")
    kept = [param for param in params if not _is_key_param(param)]
    if len(kept) == len(params):
        return path
    return f"{base}?{'&'.join(kept)}" if kept else base


def _bearer(header: str) -> str:
    header = header.strip()
    if not header:
        return ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("malformed", "the Authorization header must use the Bearer scheme")
    return token.strip()


def _key_params(path: str) -> list[str]:
    _, sep, query = path.partition("?")
    if not sep:
        return []
    return [unquote_plus(param.partition("=")[2]) for param in query.split("&") if _is_key_param(param)]


def _is_key_param(param: str) -> bool:
    return unquote_plus(param.partition("=")[0]) == "key"
