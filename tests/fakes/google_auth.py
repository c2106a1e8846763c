"""A fake Google OAuth token endpoint and GCE metadata server, in one server, issuing access tokens a fake
Vertex (tests/fakes/vertex.py) accepts until they expire.

- ``POST /token``: the service-account JWT-bearer grant as google-auth sends it (``grant_type=
  urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<RS256 JWT>``). The JWT is verified with the
  service account's public key; its ``kid`` must be the key's id and ``iss`` the account's email. The
  audience is Google's token URL (google-auth keeps it when ``token_uri`` points elsewhere).
- ``GET /computeMetadata/v1/instance/service-accounts/default/token`` and the few other metadata paths
  google-auth reads (workload identity), with ``Metadata-Flavor: Google`` required and answered.

``token_lifetime`` (seconds, settable at any time) is the ``expires_in`` of the next token; ``issued`` counts
and lists the tokens; ``refuse_grants`` answers the next grants with ``invalid_grant`` (google-auth does not
retry that), and the metadata server's token requests with the 403 GKE's gives when IAM refuses. Errors are Google's OAuth JSON (``{"error", "error_description"}``).
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.base import JSON, FakeProvider, RecordedRequest, Reply, json_reply

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_METADATA = "/computeMetadata/v1"
_ACCOUNT = _METADATA + "/instance/service-accounts/default"
_BAD_JWT_TIME = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)


@cache
def _private_key() -> rsa.RSAPrivateKey:
    """One RSA key per test process: generating one takes a noticeable moment."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: float  # time.time() seconds
    via: Literal["jwt-bearer", "metadata"]
    scopes: tuple[str, ...]


class FakeGoogleTokens(FakeProvider):
    name = "google-oauth"
    default_api_key = ""

    def __init__(
        self,
        *,
        token_lifetime: int = 3600,
        project_id: str = "fake-project",
        client_email: str = "gateway@fake-project.iam.gserviceaccount.com",
        **server: Any,
    ) -> None:
        super().__init__("", None, **server)
        self.token_lifetime = token_lifetime
        self.project_id = project_id
        self.client_email = client_email
        self.private_key_id = "fakekey0123456789abcdef"
        self.refuse_grants = False
        self.issued: list[IssuedToken] = []
        self._tokens: dict[str, IssuedToken] = {}
        self._serial = itertools.count(1)
        self._tokens_lock = threading.Lock()

    # -- test-facing -----------------------------------------------------------

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def metadata_host(self) -> str:
        """The value for ``GCE_METADATA_HOST`` (set before google.auth.compute_engine is imported)."""
        return f"127.0.0.1:{self.port}"

    def service_account_info(self) -> dict[str, str]:
        """A service-account key, as in a key file, whose ``token_uri`` is this server."""
        pem = _private_key().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.private_key_id,
            "private_key": pem.decode(),
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
        }

    def write_key_file(self, path: Path) -> Path:
        path.write_bytes(orjson.dumps(self.service_account_info()))
        return path

    @property
    def issue_count(self) -> int:
        with self._tokens_lock:
            return len(self.issued)

    def check(self, token: str) -> Literal["valid", "expired", "unknown"]:
        with self._tokens_lock:
            issued = self._tokens.get(token)
        if issued is None:
            return "unknown"
        return "valid" if time.time() < issued.expires_at else "expired"

    def expire_all(self) -> None:
        """Every token issued so far is expired from now on."""
        with self._tokens_lock:
            for token, issued in self._tokens.items():
                self._tokens[token] = IssuedToken(token, 0.0, issued.via, issued.scopes)

    def reset(self) -> None:
        super().reset()
        self.refuse_grants = False
        with self._tokens_lock:
            self.issued.clear()
            self._tokens.clear()

    # -- serving -----------------------------------------------------------------

    def answer(self, request: RecordedRequest) -> Reply:
        if request.path == "/token":
            if request.method != "POST":
                return _oauth_error(405, "invalid_request", "Method not allowed.")
            return self._grant(request)
        if request.path == "/" or request.path.startswith(_METADATA):
            return self._metadata(request)
        return _oauth_error(404, "invalid_request", "Not Found")

    def _grant(self, request: RecordedRequest) -> Reply:
        form = {key: values[0] for key, values in parse_qs(request.body.decode(errors="replace")).items()}
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
        if self.refuse_grants:
            return _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                _private_key().public_key(),
                algorithms=["RS256"],
                audience=[GOOGLE_TOKEN_URL, self.token_uri],
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            return _oauth_error(400, "invalid_grant", _BAD_JWT_TIME)
        except jwt.InvalidTokenError:
            return _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        if header.get("kid") != self.private_key_id or claims.get("iss") != self.client_email:
            return _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        if claims["exp"] - claims["iat"] > 3600:
            return _oauth_error(400, "invalid_grant", _BAD_JWT_TIME)
        scopes = tuple(str(claims.get("scope", "")).split())
        if not scopes:
            return _oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return json_reply(self._issue("jwt-bearer", scopes))

    def _metadata(self, request: RecordedRequest) -> Reply:
        flavor = {"Metadata-Flavor": "Google"}
        if request.headers.get("Metadata-Flavor") != "Google":
            return Reply(403, b"Missing required header: Metadata-Flavor", "text/html; charset=UTF-8", flavor)
        # The account by its email, as google-auth asks once it has read it, is the default one
        path = request.path.rstrip("/").replace(f"/service-accounts/{self.client_email}", "/service-accounts/default")
        if path in ("", _METADATA):
            return Reply(200, b"computeMetadata/\n", "application/text", flavor)
        if path == _METADATA + "/project/project-id":
            return Reply(200, self.project_id.encode(), "application/text", flavor)
        if path == _ACCOUNT + "/email":
            return Reply(200, self.client_email.encode(), "application/text", flavor)
        if path == _ACCOUNT:
            account = {"aliases": ["default"], "email": self.client_email, "scopes": [CLOUD_PLATFORM]}
            return Reply(200, orjson.dumps(account), JSON, flavor)
        if path == _ACCOUNT + "/token" and self.refuse_grants:  # GKE's metadata server when IAM says no
            denied = b"Unable to generate access token; IAM returned 403 Forbidden: Permission 'iam.serviceAccounts.getAccessToken' denied"
            return Reply(403, denied, "text/plain; charset=utf-8", flavor)
        if path == _ACCOUNT + "/token":
            scopes = tuple(request.query.get("scopes", CLOUD_PLATFORM).split(","))
            return Reply(200, orjson.dumps(self._issue("metadata", scopes)), JSON, flavor)
        return Reply(404, b"Not Found", "text/html; charset=UTF-8", flavor)

    def _issue(self, via: Literal["jwt-bearer", "metadata"], scopes: tuple[str, ...]) -> dict[str, Any]:
        lifetime = self.token_lifetime
        token = f"ya29.fake-{next(self._serial)}-{secrets.token_urlsafe(24)}"
        issued = IssuedToken(token, time.time() + lifetime, via, scopes)
        with self._tokens_lock:
            self.issued.append(issued)
            self._tokens[token] = issued
        return {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}


def _oauth_error(status: int, error: str, description: str) -> Reply:
    return json_reply({"error": error, "error_description": description}, status)
