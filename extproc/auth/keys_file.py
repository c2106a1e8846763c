"""The optional keys file: more API-key clients, re-read when it changes, without a restart.

A bad version keeps the previous store (one log line, no values from the
file, and a counter), so a half-edited file never locks every client out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from extproc.auth.apikeys import ApiKeyStore, DuplicateKeyError
from extproc.auth.clients import KeysFileError, read_keys_file
from extproc.auth.filewatch import ChangeCheck
from extproc.observe.metrics import KEYS_FILE_RELOADS

log = logging.getLogger(__name__)


class KeysFile:
    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._check = ChangeCheck(path, 1.0, clock)
        self._store = ApiKeyStore()
        self.current()  # the config loader already checked the file; a failure here keeps an empty store

    @property
    def path(self) -> Path:
        return self._check.path

    def current(self) -> ApiKeyStore:
        if (new_stamp := self._check.due()) is not None:
            self._reload(new_stamp)
        return self._store

    def _reload(self, new_stamp: tuple[int, int, int]) -> None:
        # Marked as loaded even when bad: the same bad version is reported once, not every second.
        self._check.loaded = new_stamp
        try:
            store = ApiKeyStore(read_keys_file(self.path))
        except (KeysFileError, DuplicateKeyError) as error:
            KEYS_FILE_RELOADS.labels("error").inc()
            log.error(
                "keys file rejected; keeping the previous clients",
                extra={"path": str(self.path), "problems": getattr(error, "problems", [str(error)])},
            )
            return
        self._store = store
        KEYS_FILE_RELOADS.labels("ok").inc()
        log.info("keys file loaded", extra={"path": str(self.path), "keys": len(store)})
