"""Value types shared by many options: their JSON Schema keywords travel with the type."""

from __future__ import annotations

from typing import Annotated

from extproc.declare.fields import Schema

Positive = Annotated[int, Schema(minimum=1)]
NonNegative = Annotated[int, Schema(minimum=0)]
Port = Annotated[int, Schema(minimum=1, maximum=65535)]
NonEmpty = Annotated[str, Schema(minLength=1)]
Seconds = Annotated[float, Schema(exclusiveMinimum=0)]  # a duration that must pass
HTTP_URL = "^https?://[^/?#@\\s]+"  # a base URL or a JWKS URL: scheme and host, no user info
