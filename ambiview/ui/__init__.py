"""The Qt widgets of AmbiView.  Importing the package first guards against a PySide6 6.12.0 bug (see the module)."""
from .pyside_refcount_guard import apply as _guard_pyside_refcounts

_guard_pyside_refcounts()
