"""Structured JSON logs: one object per line. The access line, and any line logged while a request
is handled, carries the request id the client saw (Envoy's x-request-id)."""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import time
from contextvars import ContextVar
from logging.handlers import QueueHandler, QueueListener
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


_writer: QueueListener | None = None


def setup_logging(level: str) -> None:
    """Lines are written by a thread of their own: a slow reader of stderr (a full pipe) never
    blocks the event loop. Records are queued as they are, and formatted by that thread."""
    global _writer
    if _writer is not None:
        _writer.stop()
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter())
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _writer = QueueListener(lines, stream)
    _writer.start()
    logging.getLogger().handlers[:] = [_Enqueue(lines)]
    set_level(level)


def set_level(level: str) -> None:
    """The level in force from now on (`log_level`, also on reload)."""
    logging.getLogger().setLevel(level.upper())


# Each gRPC stream runs in a task of its own: what one request binds is seen only by its own lines
# (and by the background work it starts, which copies the task's context).
_request_id: ContextVar[str] = ContextVar("request_id", default="")


def bind_request_id(request_id: str) -> None:
    """Lines logged from here on in this task name this request, unless they name one themselves."""
    _request_id.set(request_id)


class _Enqueue(QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """The record itself, its message resolved: the writer thread formats it (JSON, extras, traceback).
        The request id is read here, in the thread (and task) that logged."""
        record.msg, record.args = record.getMessage(), None
        if "request_id" not in record.__dict__ and (request_id := _request_id.get()):
            record.request_id = request_id
        return record


@atexit.register
def _flush() -> None:
    if _writer is not None:
        _writer.stop()  # writes what is queued


access_log = logging.getLogger("extproc.access")


def access_enabled() -> bool:
    """Whether access lines are written at the level in force (ask before making one)."""
    return access_log.isEnabledFor(logging.INFO)


def log_access(**fields: Any) -> None:
    """One line per request; callers pass only non-secret fields."""
    access_log.info("request", extra=fields)


def monotonic() -> float:
    return time.perf_counter()
