"""The recently opened folders and files, most recent first, kept as JSON in the user data folder.

Plain Python (no Qt) so that the CLI could share it.  The file is small and rewritten atomically on every change; a
missing, unreadable or corrupt file reads as an empty list and is replaced on the next change.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from .paths import data_dir

FILE_NAME = "recent.json"
DEFAULT_LIMIT = 10


class RecentFolders:
    """A bounded most-recent-first list of paths, persisted in `data_dir()/recent.json` unless `path` is given."""

    def __init__(self, path: Path | None = None, limit: int = DEFAULT_LIMIT) -> None:
        self.path = Path(path) if path is not None else data_dir() / FILE_NAME
        self.limit = max(int(limit), 1)

    def load(self) -> list[Path]:
        """The stored paths, most recent first (at most `limit`)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        entries = data.get("recent") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            return []
        paths: list[Path] = []
        for entry in entries:
            if isinstance(entry, str) and entry and Path(entry) not in paths:
                paths.append(Path(entry))
        return paths[: self.limit]

    def add(self, path: str | os.PathLike) -> list[Path]:
        """Put `path` (made absolute) first, dropping an older copy of it and the oldest beyond the limit."""
        new = Path(path).expanduser().absolute()
        entries = [new] + [p for p in self.load() if p != new]
        return self._save(entries)

    def remove(self, path: str | os.PathLike) -> list[Path]:
        gone = Path(path).expanduser().absolute()
        return self._save([p for p in self.load() if p != gone])

    def clear(self) -> list[Path]:
        return self._save([])

    def _save(self, entries: list[Path]) -> list[Path]:
        entries = entries[: self.limit]
        text = json.dumps({"version": 1, "recent": [str(p) for p in entries]}, indent=1)
        write_text_atomic(self.path, text)
        return entries


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path` (never a half-written file).

    The temporary file is created like any new file (permissions from the umask), not 0600 as mkstemp would.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
