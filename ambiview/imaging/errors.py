"""Exceptions of DICOM discovery and loading (re-exported by `scan` and `loader`)."""
from __future__ import annotations


class LoadError(Exception):
    """Nothing usable could be loaded; the message names the file(s) or folder and the problem."""


class LoadCancelled(Exception):
    """The caller's `cancel()` returned True; scanning or loading stopped cleanly."""
