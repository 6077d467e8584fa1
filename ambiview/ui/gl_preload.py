"""Load triton's LLVM before Mesa's, so a 3D view and a later torch model can share one process.

With Mesa's software OpenGL (llvmpipe, the renderer of Xvfb and of machines without a GPU driver) the first VTK
render loads the system's libLLVM.  triton, which torch imports on demand (torchvision.ops imports torch._dynamo,
which looks for triton), links its own LLVM; loaded after Mesa's, its start-up crashes the process with a
segmentation fault -- seen here when Probabilistic SAM ran after the 3D view had shown an UP-SAM result.  Loaded
first, both work.  So the 3D view loads triton's native library (not the Python package: 0.08 s instead of 0.4 s)
before VTK makes its first OpenGL context.  Without triton installed there is nothing to do.
"""
from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

_done = False


def is_done() -> bool:
    """Whether `preload_triton` has run in this process."""
    return _done


def preload_triton() -> Path | None:
    """dlopen triton's native library once, if triton is installed; returns its path (None when not loaded)."""
    global _done
    if _done:
        return None
    _done = True
    try:
        spec = importlib.util.find_spec("triton")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for library in sorted(Path(folder, "_C").glob("libtriton*.so")):
            try:
                ctypes.CDLL(str(library))
            except OSError:  # a broken triton install must not take the 3D view down; torch will say so itself
                return None
            return library
    return None
