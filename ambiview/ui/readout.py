"""Status-bar readout: HU, patient position (LPS mm) and voxel indices under the mouse, else at the cursor."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

from ..session import Session
from .bridge import follow


def describe_voxel(volume, zyx) -> str:
    """'HU -812 · LPS (-102.3, 45.1, 283.9) mm · voxel (z 67, y 200, x 150)' for the voxel nearest `zyx`."""
    index = tuple(int(round(float(c))) for c in zyx)
    hu = volume.hu_at(index)
    if hu is None:
        return ""
    x, y, z = volume.geometry.voxel_to_patient(index)
    return (f"HU {hu:.0f}  ·  LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm  ·  "
            f"voxel (z {index[0]}, y {index[1]}, x {index[2]})")


class CursorReadout(QLabel):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._hover = None
        follow(self, session, "cursor_changed", lambda cursor: self._refresh())
        follow(self, session, "volume_changed", lambda volume: self.show_hover(None))

    def show_hover(self, zyx) -> None:
        """Describe the voxel at `zyx` (from a view's `hovered` signal); None falls back to the cursor."""
        self._hover = zyx
        self._refresh()

    def _refresh(self) -> None:
        volume = self.session.volume
        if volume is None:
            self.setText("")
            return
        where = self._hover if self._hover is not None else self.session.cursor
        self.setText(describe_voxel(volume, where))
