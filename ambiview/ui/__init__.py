"""The Qt widgets of AmbiView (PySide6, pyqtgraph, VTK).  Widgets only: they read and write the session."""
