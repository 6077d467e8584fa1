"""Autosave and restore of the work on a series, in the user's data folder (never next to the DICOM files).

One folder per series (named by a hash of its SeriesInstanceUID): `session.json` (series reference, prompts, view
state, kept items' metadata, the current result's file name) plus `.npz` files for the masks and the result.  Every file
is written atomically, and the JSON last, so a crash at any moment leaves the previous consistent save or the new one.
A `running` marker exists while the app has the session open; finding one at start-up means the app did not close
cleanly, and the UI offers the save back.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..paths import data_dir
from ..atomic_io import write_atomically
from .kept import KeptItem
from .prompts import Prompt
from .result import SegmentationResult

SAVE_VERSION = 1


def sessions_dir() -> Path:
    path = data_dir() / "sessions"
    path.mkdir(parents=True, exist_ok=True)
    return path


def folder_for(series_uid: str) -> Path:
    return sessions_dir() / hashlib.sha1(series_uid.encode()).hexdigest()[:16]


@dataclass
class SavedSession:
    folder: Path
    series_uid: str
    source: str                 # the DICOM folder the series was opened from
    description: str
    saved: str                  # ISO time
    prompts: list[Prompt]
    view: dict
    kept: list[KeptItem]
    result: SegmentationResult | None
    crashed: bool               # the `running` marker was left behind


def save(session, source: str = "", description: str = "") -> Path | None:
    """Write the session's work for its series; returns the folder (None when no series is open)."""
    volume = session.volume
    if volume is None or not volume.identity.series_uid:
        return None
    folder = folder_for(volume.identity.series_uid)
    folder.mkdir(parents=True, exist_ok=True)
    kept_file = None
    if session.kept:
        kept_file = "kept.npz"
        arrays = {f"mask{i}": item.mask for i, item in enumerate(session.kept)}
        write_atomically(folder / kept_file, lambda fh: np.savez_compressed(fh, **arrays))
    result_file = None
    if session.result is not None:
        result_file = "result.npz"
        session.result.save(folder / result_file)
    doc = {
        "version": SAVE_VERSION, "series_uid": volume.identity.series_uid,
        "source": str(source or volume.identity.source or ""), "description": description or volume.identity.description,
        "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "prompts": [p.to_dict() for p in session.prompts], "view": session.view_state(),
        "kept": [item.meta() for item in session.kept], "kept_file": kept_file, "result_file": result_file,
    }
    write_atomically(folder / "session.json", lambda fh: fh.write(json.dumps(doc, indent=1).encode()))
    return folder


def mark_running(series_uid: str) -> None:
    folder = folder_for(series_uid)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "running").write_text(str(os.getpid()))


def mark_closed(series_uid: str) -> None:
    (folder_for(series_uid) / "running").unlink(missing_ok=True)


def load(folder: Path) -> SavedSession:
    """Read a saved session; raises ValueError naming the file when it is damaged."""
    path = folder / "session.json"
    try:
        doc = json.loads(path.read_text())
        if doc.get("version") != SAVE_VERSION:
            raise ValueError(f"save format {doc.get('version')} is not supported")
        kept: list[KeptItem] = []
        if doc.get("kept_file"):
            with np.load(folder / doc["kept_file"], allow_pickle=False) as arrays:
                kept = [KeptItem.from_meta(meta, arrays[f"mask{i}"]) for i, meta in enumerate(doc["kept"])]
        result = SegmentationResult.load(folder / doc["result_file"]) if doc.get("result_file") else None
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: the saved session cannot be read ({exc})") from exc
    return SavedSession(folder=folder, series_uid=doc["series_uid"], source=doc.get("source", ""),
                        description=doc.get("description", ""), saved=doc.get("saved", ""),
                        prompts=[Prompt.from_dict(p) for p in doc.get("prompts", [])], view=doc.get("view", {}),
                        kept=kept, result=result, crashed=(folder / "running").exists())


def find(series_uid: str) -> SavedSession | None:
    folder = folder_for(series_uid)
    if not (folder / "session.json").exists():
        return None
    return load(folder)


def unfinished() -> list[SavedSession]:
    """Saved sessions whose app did not close cleanly (offered back at start-up), newest first."""
    found = []
    for folder in sessions_dir().iterdir():
        if (folder / "running").exists() and (folder / "session.json").exists():
            try:
                found.append(load(folder))
            except ValueError:
                continue
    return sorted(found, key=lambda s: s.saved, reverse=True)


def discard(series_uid: str) -> None:
    folder = folder_for(series_uid)
    for name in ("session.json", "kept.npz", "result.npz", "running"):
        (folder / name).unlink(missing_ok=True)
