"""Files Envoy reads while it runs: always replaced whole, so it never sees one half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Write beside the target then rename. 0644 by default: readable by an Envoy running as another
    user (sidecar container); secrets are 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_sds_file(path: Path, resource: dict[str, Any]) -> None:
    """One SDS resource, owner-only, replaced only when it changed: each rename makes Envoy read it again."""
    import yaml  # here: a worker process imports this module and writes no file

    text = yaml.safe_dump({"resources": [resource]}, sort_keys=False)
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(path, text, 0o600)
