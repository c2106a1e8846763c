"""Bodies in the access log: never, unless `log_bodies: true` asks (a debugging aid).

Even then credentials and images stay out: the value of any key-like field
(`api_key`, `key`, `authorization`, `token`, `secret`, `password`, ...), base64
payloads (`data`, `b64_json`) and `data:` URLs are replaced by their length.
One regular-expression pass over the text, so JSON bodies, SSE streams and
Gemini's JSON arrays are handled alike, and a body that is not JSON at all still
gets its `data:` URLs cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_LOGGED_CHARS = 64 * 1024  # per body, after redaction

_STRING = r'"((?:[^"\\]|\\.)*)"'
# A JSON member whose value is a string, or a `data:` URL standing alone (an array item, a bare body).
_TOKENS = re.compile(rf'"([^"\\]{{1,80}})"(\s*:\s*){_STRING}|(data:[\w.+/-]*(?:;[\w.+=-]+)*),[^"\s]*')
_CREDENTIAL = re.compile(
    r"(?:[\w-]*[_-])?(?:api[_-]?key|apikey|key|secret|password|passwd|token|authorization|credentials?|cookie)",
    re.IGNORECASE,
)
_PAYLOAD = frozenset({"data", "b64_json", "bytes", "image_base64"})
_DATA_URL = re.compile(r"(data:[\w.+/-]*(?:;[\w.+=-]+)*),")


@dataclass(slots=True)
class BodyLog:
    """A request's body and its answer's, as the client sent and got them."""

    request: bytes = b""
    answer: list[bytes] = field(default_factory=list)

    def fields(self) -> dict[str, str]:
        return {"request_body": redact(self.request), "response_body": redact(b"".join(self.answer))}


def redact(body: bytes) -> str:
    text = _TOKENS.sub(_redacted, body.decode("utf-8", "replace"))
    if len(text) > MAX_LOGGED_CHARS:
        return f"{text[:MAX_LOGGED_CHARS]}...[{len(text) - MAX_LOGGED_CHARS} more characters]"
    return text


def _redacted(found: re.Match[str]) -> str:
    name, colon, value, url = found.groups()
    if url is not None:  # a bare data: URL
        return f"{url},[{len(found.group(0)) - len(url) - 1} characters redacted]"
    if _CREDENTIAL.fullmatch(name):
        return f'"{name}"{colon}"[redacted]"'
    if name in _PAYLOAD:
        return f'"{name}"{colon}"[{len(value)} characters redacted]"'
    if value.startswith("data:") and (prefix := _DATA_URL.match(value)):
        return f'"{name}"{colon}"{prefix.group(1)},[{len(value) - prefix.end()} characters redacted]"'
    return found.group(0)
