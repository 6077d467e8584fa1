"""On-disk cache of frozen-encoder embeddings, keyed by a fingerprint of the image data and the backbone's digest.

A changed crop or different backbone weights give a different key, so a stale embedding is never reused (the idea of
micro-sam's data signature).  Embeddings are stored as float16 `.npy`: they are small (|x| < 1 for LiteMedSAM) and the
rounding moves the mask probabilities by < 1e-3 (measured in the model card), so training and inference both use the
rounded values and stay consistent.  Files are written atomically (temporary file + os.replace).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from ..paths import cache_dir

FORMAT = "emb-v1"  # bump when preprocessing changes


def fingerprint(image: np.ndarray) -> str:
    """sha256 of an image's shape, dtype and bytes."""
    image = np.ascontiguousarray(image)
    digest = hashlib.sha256()
    digest.update(f"{image.shape}|{image.dtype.str}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class EmbeddingCache:
    """Embeddings on disk under `root` (default: `<cache_dir>/embeddings`)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "embeddings"

    def key(self, image: np.ndarray, backbone_sha256: str) -> str:
        return hashlib.sha256(f"{FORMAT}|{backbone_sha256}|{fingerprint(image)}".encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The stored float16 embedding, or None when absent or unreadable (a damaged file counts as a miss)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None

    def put(self, key: str, embedding: np.ndarray) -> np.ndarray:
        """Store an embedding (as float16) atomically and return the stored array."""
        stored = np.ascontiguousarray(embedding, dtype=np.float16)
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, stored, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return stored

    def clear(self) -> int:
        """Delete every cached embedding; returns how many files were removed."""
        removed = 0
        for path in self.root.glob("*/*.npy"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed
