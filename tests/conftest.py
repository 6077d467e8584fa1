"""Shared fixtures: where the real data is, and private cache/data folders so tests never touch the user's."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ambiview.paths import shared_data_dir


@pytest.fixture(scope="session", autouse=True)
def _private_app_dirs(tmp_path_factory):
    """Point AmbiView's cache and data folders at a temporary folder for the whole run."""
    root = tmp_path_factory.mktemp("ambiview-home")
    saved = {k: os.environ.get(k) for k in ("AMBIVIEW_CACHE_DIR", "AMBIVIEW_DATA_DIR")}
    os.environ["AMBIVIEW_CACHE_DIR"] = str(root / "cache")
    os.environ["AMBIVIEW_DATA_DIR"] = str(root / "data")
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _require(path: Path, what: str) -> Path:
    if path.exists():
        return path
    reason = f"{what} not found at {path} (set AMBIVIEW_SHARED_DATA)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " -- the shared data must be present in CI")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(shared_data_dir(), "the shared data folder")


@pytest.fixture(scope="session")
def ct_chest_dir(shared_data) -> Path:
    return _require(shared_data / "ct-chest", "the real chest CT series")


@pytest.fixture(scope="session")
def lidc_dir(shared_data) -> Path:
    return _require(shared_data / "lidc-crops64", "the LIDC crops")
