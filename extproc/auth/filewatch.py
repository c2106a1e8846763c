"""Has a file changed? Cheap enough to ask on the request path.

A Kubernetes ConfigMap or Secret update swaps a symlink: os.stat follows it,
so (mtime_ns, inode, size) changes even when the new file has the old mtime.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

FileStamp = tuple[int, int, int]


def stamp(path: Path) -> FileStamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino, st.st_size)


class ChangeCheck:
    """Reports a change of `path` at most once per `interval_s`; the caller records what it loaded."""

    def __init__(self, path: Path, interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._interval_s = interval_s
        self._clock = clock
        self._checked_at: float | None = None
        self.loaded: FileStamp | None = None  # stamp of the content in use

    def due(self, force: bool = False) -> FileStamp | None:
        """The file's new stamp when it differs from the loaded one (looked at once per interval), else None."""
        now = self._clock()
        if not force and self._checked_at is not None and now - self._checked_at < self._interval_s:
            return None
        self._checked_at = now
        current = stamp(self.path)
        return current if current is not None and current != self.loaded else None
