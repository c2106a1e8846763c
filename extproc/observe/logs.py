"""Structured JSON logs: one object per line; the access line carries Envoy's x-request-id."""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import time
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
    root = logging.getLogger()
    root.handlers[:] = [_Enqueue(lines)]
    root.setLevel(level.upper())


class _Enqueue(QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """The record itself, its message resolved: the writer thread formats it (JSON, extras, traceback)."""
        record.msg, record.args = record.getMessage(), None
        return record


@atexit.register
def _flush() -> None:
    if _writer is not None:
        _writer.stop()  # writes what is queued


access_log = logging.getLogger("extproc.access")


def log_access(**fields: Any) -> None:
    """One line per request; callers pass only non-secret fields."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info("request", extra=fields)


def monotonic() -> float:
    return time.perf_counter()
