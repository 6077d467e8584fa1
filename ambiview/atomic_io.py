"""Atomic writes of the app's own files (results, autosaves, checkpoints, reports): complete or not at all.

Exports of DICOM/NIfTI go through ambiview.export.atomic, which hands writers a temporary *path* (for libraries that
write by file name) and refuses the source DICOM folder."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """write(handle) into a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (see write_atomically)."""
    return write_atomically(path, lambda handle: handle.write(data))
