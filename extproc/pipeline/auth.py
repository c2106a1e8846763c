"""Stage: who is calling. A credential (API key or JWT, wherever the client's SDK sends it)
becomes the client's Identity, under the method its route (or its listener) asks for;
then the client may use only its allowed models.

Credentials never go further: every credential header is removed and Gemini's
`?key=` is cut from the path before anything is forwarded or logged.

When: at the request headers, before a body is buffered, under the widest of
the methods of every route the headers leave possible; a credential that fails
it fails them all. Only when one of those routes takes anyone (`auth: none`)
does the check wait for the route. Either way, the route the body finally
resolves to (again, once the caller is known, when rules match on clients or
tenants) admits the identity only if it came the way that route asks.
"""

from __future__ import annotations

from typing import cast

from extproc.auth.authenticator import method_before_body
from extproc.auth.credentials import strip_key_param
from extproc.auth.errors import AuthError
from extproc.auth.identity import AuthMethod
from extproc.errors import GatewayError
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.parse import resolve
from extproc.pipeline.stage import Stage
from extproc.provider_kinds import CREDENTIAL_HEADERS
from extproc.routing import Facts

# Bearer-token APIs say how to authenticate; Anthropic's x-api-key API sends no challenge.
_BEARER_CHALLENGE = 'Bearer realm="llm-gateway"'
_CHALLENGE = {"openai": _BEARER_CHALLENGE, "responses": _BEARER_CHALLENGE, "gemini": _BEARER_CHALLENGE}


def listener_method(ex: Exchange) -> AuthMethod:
    config = ex.snapshot.config
    try:
        return config.listener_auth(ex.listener)
    except KeyError:  # no listener named on the stream: ask for what any configured auth accepts
        return "any" if config.auth.configured else "none"


def route_method(ex: Exchange) -> AuthMethod:
    """The method the resolved route asks for: its own, else its listener's (also for no route: a 404)."""
    own = ex.target.auth if ex.target is not None else None
    return cast(AuthMethod, own) if own is not None else listener_method(ex)


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
        assert endpoint is not None  # set by the endpoint stage
        router = ex.snapshot.router
        listener = listener_method(ex)
        method: AuthMethod | None = listener
        if router.routes_choose_auth and endpoint.operation != "models":
            facts = Facts(headers, endpoint.format, ex.path, "", "")
            method = method_before_body(router.methods_before_body(listener, facts))
        if method is not None:
            await self._authenticate(ex, method, headers.get(":path", ""))
        return None

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        # Without routes of their own method, every route asks for the listener's: checked at the headers.
        if ex.snapshot.router.routes_choose_auth:
            await self._admit_to_route(ex)
        if not ex.identity.allows(ex.model):
            raise GatewayError(
                "permission", f"this client may not use the model `{ex.model}`", code="model_not_allowed", param="model"
            )
        return None

    async def _admit_to_route(self, ex: Exchange) -> None:
        if ex.auth_method is None:  # a route that takes anyone was possible: checked once the route is known
            await self._authenticate(ex, route_method(ex), ex.headers.get(":path", ""))
            if ex.snapshot.router.needs_identity:  # rules that match on clients or tenants
                ex.target = resolve(ex)
        try:  # the final route, whichever resolution chose it, admits only the method it asks for
            ex.identity = ex.snapshot.authenticator.admit(ex.identity, route_method(ex))
        except AuthError as error:
            raise self._refusal(ex, error) from None

    async def _authenticate(self, ex: Exchange, method: AuthMethod, original_path: str) -> None:
        try:
            ex.identity = await ex.snapshot.authenticator.authenticate(ex.headers, original_path, method)
        except AuthError as error:
            raise self._refusal(ex, error) from None
        ex.auth_method = method

    @staticmethod
    def _refusal(ex: Exchange, error: AuthError) -> GatewayError:
        if error.reason == "jwks_unavailable":  # our keys are missing, not the client's fault: retry later
            return GatewayError("unavailable", error.message, code=error.reason, headers=(("retry-after", "5"),))
        challenge = _CHALLENGE.get(ex.error_format)
        return GatewayError(
            "authentication",
            error.message,
            code="invalid_api_key" if error.reason == "unknown_key" else error.reason,
            headers=(("www-authenticate", challenge),) if challenge else (),
        )
