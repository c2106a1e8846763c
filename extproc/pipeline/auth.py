"""Stage: who is calling. A credential (API key or JWT, wherever the client's SDK sends it)
becomes the client's Identity, under the method its listener (or its route) asks for;
then the client may use only its allowed models.

Credentials never go further: every credential header is removed and Gemini's
`?key=` is cut from the path before anything is forwarded or logged. When no
route chooses its own method, the credential is checked at the request
headers, before a body is buffered; otherwise once the route is known.
"""

from __future__ import annotations

from typing import cast

from extproc.auth.credentials import strip_key_param
from extproc.auth.errors import AuthError
from extproc.auth.identity import AuthMethod
from extproc.errors import GatewayError
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.parse import resolve
from extproc.pipeline.stage import Stage

CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
# Bearer-token APIs say how to authenticate; Anthropic's x-api-key API sends no challenge.
_BEARER_CHALLENGE = 'Bearer realm="llm-gateway"'
_CHALLENGE = {"openai": _BEARER_CHALLENGE, "responses": _BEARER_CHALLENGE, "gemini": _BEARER_CHALLENGE}


def listener_method(ex: Exchange) -> AuthMethod:
    config = ex.snapshot.config
    try:
        return config.listener_auth(ex.listener)
    except KeyError:  # no listener named on the stream: ask for what any configured auth accepts
        return "any" if config.auth.configured else "none"


class AuthStage(Stage):
    name = "auth"

    async def request_headers(self, ex: Exchange, reply: PhaseReply, end_of_stream: bool) -> LocalAnswer | None:
        headers = ex.headers
        reply.remove_headers += [name for name in CREDENTIAL_HEADERS if name in headers]
        stripped = strip_key_param(ex.path)
        if stripped is not ex.path:
            reply.set_headers.append((":path", stripped))
            ex.path = stripped
        endpoint = ex.endpoint
        listing = endpoint is not None and endpoint.operation == "models"
        if listing or not ex.snapshot.router.routes_choose_auth:
            await self._authenticate(ex, listener_method(ex), headers.get(":path", ""))
        return None

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        route_method = ex.target.auth if ex.target is not None else None
        if ex.auth_method is None or (route_method is not None and route_method != ex.auth_method):
            method = cast(AuthMethod, route_method) if route_method is not None else listener_method(ex)
            await self._authenticate(ex, method, ex.headers.get(":path", ""))
        if ex.snapshot.router.needs_identity:  # rules that match on clients or tenants
            ex.target = resolve(ex)
        if not ex.identity.allows(ex.model):
            raise GatewayError(
                "permission", f"this client may not use the model `{ex.model}`", code="model_not_allowed", param="model"
            )
        return None

    async def _authenticate(self, ex: Exchange, method: AuthMethod, original_path: str) -> None:
        try:
            ex.identity = await ex.snapshot.authenticator.authenticate(ex.headers, original_path, method)
        except AuthError as error:
            if error.reason == "jwks_unavailable":  # our keys are missing, not the client's fault: retry later
                raise GatewayError(
                    "unavailable", error.message, code=error.reason, headers=(("retry-after", "5"),)
                ) from None
            challenge = _CHALLENGE.get(ex.error_format)
            raise GatewayError(
                "authentication",
                error.message,
                code="invalid_api_key" if error.reason == "unknown_key" else error.reason,
                headers=(("www-authenticate", challenge),) if challenge else (),
            ) from None
        ex.auth_method = method
