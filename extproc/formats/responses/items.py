"""Client side: a Responses request's `input` items -> canonical messages.

Consecutive assistant-side items (assistant messages, reasoning, function calls) make one
assistant turn; each function_call_output is one tool message. What the canonical model has
no place for is noted as an ApiFeature: a provider that speaks the Responses API gets it with
the client's bytes, any other drops and names it, or refuses it (`ApiFeature.when_foreign`).
"""

from __future__ import annotations

from typing import Any

from extproc.formats.canonical import (
    ApiFeature,
    FilePart,
    ImagePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolCall,
    feature_name,
)
from extproc.formats.client_errors import invalid
from extproc.formats.input_bounds import MAX_MESSAGES, check_count
from extproc.formats.json_fields import QUOTED, as_array, data_url, nonempty_str, opt_str, req_str
from extproc.formats.responses import reasoning
from extproc.formats.responses.common import flat_tool_name

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = ("input_text", "output_text")


class InputReader:
    """Reads one request's `input`; `features` collects what only a Responses provider can carry."""

    def __init__(self, features: list[ApiFeature]) -> None:
        self.features = features
        self.messages: list[Message] = []
        self._names: dict[str, str] = {}  # call_id -> (flat) function name, for tool messages

    def read(self, raw: Any) -> list[Message]:
        if isinstance(raw, str):
            self.messages.append(Message("user", [TextPart(raw)]))
            return self.messages
        if not isinstance(raw, list):
            raise invalid("'input' must be a string or an array of input items", "input")
        check_count(raw, MAX_MESSAGES, "input")
        for i, item in enumerate(raw):
            self._item(item, f"input[{i}]")
        return self.messages

    def _item(self, item: Any, param: str) -> None:
        if not isinstance(item, dict):  # inline, not a reader: this runs for every item of the history
            raise QUOTED.must(param, "an object")
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"  # the SDKs' short form: {role, content}
        if kind == "message":
            self._message(item, param)
        elif kind == "function_call":
            self._call(item, param)
        elif kind == "function_call_output":
            self._output(item, param)
        elif kind == "reasoning":
            self._reasoning(item, param)
        elif kind == "item_reference":  # an item the provider stored: only that provider has it
            self.features.append(ApiFeature("input.item_reference", f"{param}.id", "refuse", item))
        elif isinstance(kind, str):  # a hosted tool's call, a custom tool's, an item type added since
            self.features.append(ApiFeature(feature_name("input.", kind), f"{param}.type", value=item))
        else:
            raise QUOTED.must(f"{param}.type", "a string")

    def _assistant(self) -> Message:
        """The assistant turn being gathered (a new one after any other role)."""
        if self.messages and self.messages[-1].role == "assistant":
            return self.messages[-1]
        message = Message("assistant")
        self.messages.append(message)
        return message

    def _message(self, item: dict[str, Any], param: str) -> None:
        raw_role = item.get("role")
        if not isinstance(raw_role, str):
            raise invalid(f"'{param}.role' is required and must be a string", f"{param}.role")
        role = _ROLES.get(raw_role)
        if role is None:  # a role added since
            self.features.append(ApiFeature(feature_name("role.", raw_role), f"{param}.role", value=item))
            return
        content = item.get("content")
        if content is None:
            raise QUOTED.missing(f"{param}.content")
        parts = self._parts(content, f"{param}.content")
        if role == "assistant":
            self._assistant().content.extend(parts)
        else:
            self.messages.append(Message(role, parts))  # type: ignore[arg-type]

    def _parts(self, content: Any, param: str) -> list[Part]:
        if isinstance(content, str):
            return [TextPart(content)]
        if not isinstance(content, list):
            raise QUOTED.must(param, "a string or an array of content parts")
        parts: list[Part] = []
        for j, part in enumerate(content):
            pparam = f"{param}[{j}]"
            if not isinstance(part, dict):
                raise QUOTED.must(pparam, "an object")
            kind = part.get("type")
            if kind in _TEXT_PARTS:
                parts.append(TextPart(req_str(part, "text", pparam)))
            elif kind == "refusal":  # a refusal in history is what the assistant said
                parts.append(TextPart(req_str(part, "refusal", pparam)))
            elif kind == "input_image":
                self._image(part, pparam, parts)
            elif kind == "input_file":
                self._file(part, pparam, parts)
            elif isinstance(kind, str):
                self.features.append(ApiFeature(feature_name("input.", kind), f"{pparam}.type", value=part))
            else:
                raise QUOTED.must(f"{pparam}.type", "a string")
        return parts

    def _image(self, part: dict[str, Any], param: str, parts: list[Part]) -> None:
        detail = opt_str(part, "detail", param)
        url = part.get("image_url")
        if url is None:
            self._file_id(part, "input_image.file_id", param)
            return
        if not isinstance(url, str) or not url:
            raise QUOTED.must(f"{param}.image_url", "a non-empty string")
        if url.startswith("data:"):
            media_type, data = data_url(url, f"{param}.image_url")
            parts.append(ImagePart(media_type=media_type, data=data, detail=detail))
        elif url.startswith(("https://", "http://")):
            parts.append(ImagePart(url=url, detail=detail))
        else:
            raise invalid("image URLs must be http(s) URLs or base64 data URIs", f"{param}.image_url")

    def _file(self, part: dict[str, Any], param: str, parts: list[Part]) -> None:
        filename = opt_str(part, "filename", param)
        data, url = part.get("file_data"), part.get("file_url")
        if isinstance(data, str) and data:
            if data.startswith("data:"):
                media_type, payload = data_url(data, f"{param}.file_data")
                parts.append(FilePart(media_type, payload, filename=filename))
            else:  # bare base64: the type follows from the name, as OpenAI does
                parts.append(FilePart(_media_type_of(filename), data, filename=filename))
        elif isinstance(url, str) and url.startswith(("https://", "http://")):
            parts.append(FilePart(_media_type_of(url), url=url, filename=filename))
        elif data is None and url is None:
            self._file_id(part, "input_file.file_id", param)
        else:
            raise invalid(f"'{param}' needs file_data (a base64 data URI), file_url or file_id", param)

    def _file_id(self, part: dict[str, Any], feature: str, param: str) -> None:
        """A file uploaded to OpenAI's Files API: no other provider can read it."""
        if not isinstance(part.get("file_id"), str):
            raise invalid(f"'{param}' needs a URL, inline data or a file_id", param)
        self.features.append(ApiFeature(feature, f"{param}.file_id", value=part))

    def _call(self, item: dict[str, Any], param: str) -> None:
        call_id = nonempty_str(item, "call_id", param)
        name = nonempty_str(item, "name", param)
        if item.get("namespace") is not None:
            name = flat_tool_name(nonempty_str(item, "namespace", param), name)
        arguments = item.get("arguments", "")
        if not isinstance(arguments, str):
            raise QUOTED.must(f"{param}.arguments", "a string")
        self._names[call_id] = name
        self._assistant().tool_calls.append(ToolCall(call_id, name, arguments))

    def _output(self, item: dict[str, Any], param: str) -> None:
        call_id = nonempty_str(item, "call_id", param)
        output = item.get("output")
        if output is None:
            raise QUOTED.missing(f"{param}.output")
        parts = self._parts(output, f"{param}.output")
        self.messages.append(Message("tool", parts, tool_call_id=call_id, name=self._names.get(call_id)))

    def _reasoning(self, item: dict[str, Any], param: str) -> None:
        # the summary stands for the reasoning; its full text only when there is none
        texts = _texts(item, "summary", param) or _texts(item, "content", param)
        encrypted = opt_str(item, "encrypted_content", param)
        text = "\n\n".join(texts)
        if encrypted:
            own = reasoning.decode(encrypted)
            if own is not None:
                self._assistant().content.append(own)
                return
            # OpenAI's: only an OpenAI Responses API can read it; any other provider goes without
            # (its value is keyed as the ThinkingPart's `encrypted`)
            self.features.append(ApiFeature("reasoning.encrypted_content", f"{param}.encrypted_content", "drop"))
            self._assistant().content.append(ThinkingPart(text, encrypted=encrypted))
        elif text:
            self._assistant().content.append(ThinkingPart(text))


def _texts(item: dict[str, Any], key: str, param: str) -> list[str]:
    """The texts of a reasoning item's `summary` or `content` parts."""
    raw = item.get(key)
    if raw is None:
        return []
    return [
        part["text"]
        for part in as_array(raw, f"{param}.{key}")
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    ]


_MEDIA_TYPES = {"pdf": "application/pdf", "txt": "text/plain", "md": "text/markdown", "csv": "text/csv"}


def _media_type_of(name: str | None) -> str:
    ext = (name or "").split("?", 1)[0].rsplit(".", 1)[-1].lower()
    return _MEDIA_TYPES.get(ext, "application/pdf")
