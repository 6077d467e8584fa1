"""Atomic writes: a file appears complete or not at all, never inside the source DICOM folder.

The content goes to a temporary file in the target folder (same file system, so the final rename is atomic), is flushed
to disk, and replaces the target with os.replace.  Any failure removes the temporary file and is reported as an
`ExportError` naming the file and the problem (full disk, read-only or missing permission).
"""
from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from ..imaging.volume import Volume
from ..paths import data_dir
from .items import ExportError


def source_folders(volume: Volume | None) -> set[Path]:
    """Folders that hold the source series: exports never go there."""
    if volume is None:
        return set()
    folders = {Path(f).resolve().parent for f in volume.identity.files}
    if volume.identity.source is not None:
        src = Path(volume.identity.source).resolve()
        folders.add(src if src.is_dir() else src.parent)
    return folders


def default_export_dir(volume: Volume | None = None) -> Path:
    """An export folder under the user data folder, one per series and run: exports/<series>/<timestamp>."""
    series = ""
    if volume is not None and volume.identity.series_uid:
        series = volume.identity.series_uid.rsplit(".", 1)[-1][-12:]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return data_dir() / "exports" / (f"series-{series}" if series else "unknown-series") / stamp


def safe_filename(text: str, fallback: str = "export") -> str:
    """A file name made of the text's letters, digits, dashes and underscores."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")
    return name[:80] or fallback


def check_target(target: Path, protected: Iterable[Path] = ()) -> Path:
    """Resolve the target, refuse a protected (source) folder, create the folder if needed."""
    target = Path(target).expanduser()
    if target.exists() and target.is_dir():
        raise ExportError(f"{target} is a folder; give a file name")
    folder = target.parent.resolve()
    for p in protected:
        source = Path(p).resolve()
        if folder == source or source in folder.parents:
            raise ExportError(f"refusing to write {target.name} into {folder}: it is (inside) the source DICOM "
                              f"folder {source}; choose another folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the folder {folder}: {_reason(exc)}") from exc
    return folder / target.name


def atomic_write(target: Path, write: Callable[[Path], None], protected: Iterable[Path] = ()) -> Path:
    """Run write(temp_path) and move the finished file to target; on failure leave nothing behind.

    `write` receives a path in the target folder whose name ends like the target's (".dcm", ".nii.gz"), so
    writers that choose a format by extension work.  Returns the final path.
    """
    target = check_target(target, protected)
    suffix = "".join(target.suffixes[-2:]) if target.name.endswith(".nii.gz") else target.suffix
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".part" + suffix, dir=target.parent)
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {_reason(exc)}; nothing was written") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write {target}: {_reason(exc)}; nothing was written") from exc
        raise
    _fsync_folder(target.parent)
    return target


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno == errno.EDQUOT:
        return "the disk quota is exceeded"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (the folder is not writable)"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    return exc.strerror or str(exc)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass  # the original error is the one worth reporting


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows opening a folder (not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
