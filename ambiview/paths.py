"""Where AmbiView keeps its own files: never inside a DICOM source folder."""
from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir, user_data_dir

APP = "AmbiView"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Cache (demo study, embeddings); AMBIVIEW_CACHE_DIR overrides it (tests point it at a temporary folder)."""
    path = Path(os.environ.get("AMBIVIEW_CACHE_DIR") or user_cache_dir(APP, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """User data (recent folders, autosaved sessions, exports); AMBIVIEW_DATA_DIR overrides it."""
    path = Path(os.environ.get("AMBIVIEW_DATA_DIR") or user_data_dir(APP, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir() -> Path:
    """The real data beside the project (read-only): AMBIVIEW_SHARED_DATA or ../shared/data from the project root."""
    return Path(os.environ.get("AMBIVIEW_SHARED_DATA") or PROJECT_ROOT.parent / "shared" / "data")


def models_dir() -> Path:
    """Bundled checkpoints; AMBIVIEW_MODELS_DIR overrides it."""
    return Path(os.environ.get("AMBIVIEW_MODELS_DIR") or PROJECT_ROOT / "models")
