"""Which limit rules apply to a request, and the bucket each one counts it in."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from urllib.parse import quote

from extproc.config.traffic import LimitRule


@dataclass(frozen=True, slots=True)
class Subject:
    """What a request is, in the dimensions limits key on."""

    client: str
    tenant: str
    provider: str
    model: str
    route: str

    def value(self, dimension: str) -> str:
        return str(getattr(self, dimension))


def applies(rule: LimitRule, subject: Subject) -> bool:
    match = rule.match
    return (
        (not match.clients or subject.client in match.clients)
        and (not match.tenants or subject.tenant in match.tenants)
        and (not match.providers or subject.provider in match.providers)
        and (not match.routes or subject.route in match.routes)
        and (not match.models or any(fnmatchcase(subject.model, pattern) for pattern in match.models))
    )


def bucket_key(rule: LimitRule, subject: Subject) -> str:
    """`rule/client=alice/model=gpt-4o`: values quoted, so no client id or model can forge another's key."""
    parts = [rule.name] + [f"{dimension}={_quoted(subject.value(dimension))}" for dimension in rule.key]
    return "/".join(parts)


@lru_cache(maxsize=4096)
def _quoted(value: str) -> str:
    """Quoting walks the value byte by byte in Python; the same few clients and models repeat."""
    return quote(value, safe="")
