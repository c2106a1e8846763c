"""Where each SDK sends its key, conflicts between places, and stripping Gemini's ?key= from the path."""

from __future__ import annotations

import pytest

from extproc.auth.credentials import Credential, find_credential, strip_key_param
from extproc.auth.errors import AuthError


@pytest.mark.parametrize(
    ("headers", "path", "place"),
    [
        ({"authorization": "Bearer gw-abc"}, "/v1/chat/completions", "authorization"),
        ({"authorization": "bearer gw-abc"}, "/v1/chat/completions", "authorization"),
        ({"authorization": "BEARER   gw-abc "}, "/v1/chat/completions", "authorization"),
        ({"x-api-key": "gw-abc"}, "/v1/messages", "x-api-key"),
        ({"x-goog-api-key": "gw-abc"}, "/v1beta/models/m:generateContent", "x-goog-api-key"),
        ({"api-key": "gw-abc"}, "/openai/deployments/d/chat/completions", "api-key"),
        ({}, "/v1beta/models/m:generateContent?key=gw-abc", "query"),
        ({}, "/v1beta/models/m:streamGenerateContent?alt=sse&key=gw-abc", "query"),
    ],
)
def test_every_sdk_credential_place_is_found(headers: dict[str, str], path: str, place: str) -> None:
    assert find_credential(headers, path) == Credential(place, "gw-abc")  # type: ignore[arg-type]


def test_no_credential_anywhere_is_none() -> None:
    assert find_credential({"content-type": "application/json"}, "/v1/models?page=2") is None


def test_empty_values_count_as_absent() -> None:
    headers = {"authorization": "", "x-api-key": "  ", "api-key": ""}
    assert find_credential(headers, "/v1/models?key=&x=1") is None
    assert find_credential({"authorization": "Bearer "}, "/v1/models") is None


def test_a_non_bearer_authorization_scheme_is_malformed() -> None:
    with pytest.raises(AuthError) as raised:
        find_credential({"authorization": "Basic dXNlcjpwYXNz"}, "/v1/models")
    assert raised.value.reason == "malformed"
    assert "dXNlcjpwYXNz" not in str(raised.value)


def test_the_same_key_in_two_places_is_accepted() -> None:
    found = find_credential({"authorization": "Bearer gw-abc", "x-api-key": "gw-abc"}, "/v1/messages?key=gw-abc")
    assert found is not None and found.value == "gw-abc"


@pytest.mark.parametrize(
    ("headers", "path"),
    [
        ({"authorization": "Bearer gw-one", "x-api-key": "gw-two"}, "/v1/messages"),
        ({"x-goog-api-key": "gw-one"}, "/v1beta/models/m:generateContent?key=gw-two"),
        ({}, "/v1beta/models/m:generateContent?key=gw-one&key=gw-two"),
    ],
)
def test_different_credentials_in_two_places_conflict(headers: dict[str, str], path: str) -> None:
    with pytest.raises(AuthError) as raised:
        find_credential(headers, path)
    assert (raised.value.reason, raised.value.message) == ("malformed", "conflicting credentials")
    assert "gw-one" not in str(raised.value) and "gw-two" not in repr(raised.value)


def test_a_credential_repr_hides_its_value() -> None:
    credential = Credential("x-api-key", "gw-very-secret")
    assert "gw-very-secret" not in repr(credential)
    assert "x-api-key" in repr(credential)


def test_query_key_is_percent_decoded() -> None:
    found = find_credential({}, "/v1beta/models/m:generateContent?key=gw%2Dabc")
    assert found == Credential("query", "gw-abc")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1beta/models/m:generateContent?key=k", "/v1beta/models/m:generateContent"),
        ("/m?alt=sse&key=k", "/m?alt=sse"),
        ("/m?key=k&alt=sse", "/m?alt=sse"),
        ("/m?a=1&key=k&b=%20x+y&key=k2", "/m?a=1&b=%20x+y"),
        ("/m?key", "/m"),
        ("/m?key=", "/m"),
        ("/m?keys=1&monkey=2&key=k", "/m?keys=1&monkey=2"),
        ("/m?a=%2F&&key=k", "/m?a=%2F&"),
    ],
)
def test_strip_key_param_removes_only_key_parameters(path: str, expected: str) -> None:
    assert strip_key_param(path) == expected


def test_strip_key_param_returns_the_same_object_without_a_key() -> None:
    for path in ("/v1/models", "/v1/models?alt=sse&keys=2", "/v1/models?"):
        assert strip_key_param(path) is path
