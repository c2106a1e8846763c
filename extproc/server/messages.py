"""Builders for ext_proc protobuf messages (xds-protos, upb): small, allocation-light."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    BodyMutation,
    BodyResponse,
    CommonResponse,
    HeaderMutation,
    HeadersResponse,
    ImmediateResponse,
    ProcessingResponse,
)
from envoy.type.v3.http_status_pb2 import HttpStatus

OVERWRITE = HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
BUFFERED = ProcessingMode.BUFFERED
STREAMED = ProcessingMode.STREAMED

# Shared, never mutated: "go on unchanged" for each phase.
CONTINUE_REQUEST_HEADERS = ProcessingResponse(request_headers=HeadersResponse())
CONTINUE_REQUEST_BODY = ProcessingResponse(request_body=BodyResponse())
CONTINUE_RESPONSE_HEADERS = ProcessingResponse(response_headers=HeadersResponse())
CONTINUE_RESPONSE_BODY = ProcessingResponse(response_body=BodyResponse())

Headers = Iterable[tuple[str, str]]


def header_mutation(set_headers: Headers = (), remove: Iterable[str] = ()) -> HeaderMutation:
    return HeaderMutation(
        set_headers=[
            HeaderValueOption(header=HeaderValue(key=k, raw_value=v.encode()), append_action=OVERWRITE)
            for k, v in set_headers
        ],
        remove_headers=list(remove),
    )


def common(
    set_headers: Headers = (),
    remove: Iterable[str] = (),
    body: bytes | None = None,
    clear_route_cache: bool = False,
) -> CommonResponse:
    response = CommonResponse(header_mutation=header_mutation(set_headers, remove), clear_route_cache=clear_route_cache)
    if body is not None:
        response.body_mutation.CopyFrom(BodyMutation(body=body))
    return response


def immediate(status: int, body: bytes, headers: Headers = (), details: str = "") -> ProcessingResponse:
    return ProcessingResponse(
        immediate_response=ImmediateResponse(
            status=HttpStatus(code=status),
            headers=header_mutation(headers),
            body=body,
            details=details,
        )
    )


def response_body_mode(body_mode: int) -> ProcessingMode:
    """A per-request override of how the answer's body is sent; other phases keep the filter's default."""
    return ProcessingMode(response_body_mode=body_mode)


def headers_of(http_headers) -> dict[str, str]:
    """Envoy sends values in raw_value (bytes); `value` stays empty."""
    return {h.key: h.raw_value.decode("latin-1") or h.value for h in http_headers.headers.headers}
