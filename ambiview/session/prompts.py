"""Prompts (positive/negative points, boxes) kept in voxel and patient coordinates, with bounded undo/redo."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from ..imaging.geometry import Geometry


class PromptKind(str, Enum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    BOX = "box"


@dataclass(frozen=True)
class Prompt:
    """A prompt on one slice.  Points: `zyx` = (z, y, x).  Boxes: corners (z, y0, x0) and (z, y1, x1).

    `patient` holds the LPS mm of the point or of both box corners, computed once through the geometry.
    """

    kind: PromptKind
    voxel: tuple[float, ...]
    patient: tuple[tuple[float, float, float], ...] = field(default=(), compare=False)

    @property
    def z(self) -> int:
        return int(round(self.voxel[0]))

    @property
    def is_point(self) -> bool:
        return self.kind is not PromptKind.BOX

    @classmethod
    def point(cls, z: float, y: float, x: float, positive: bool = True, geometry: Geometry | None = None) -> "Prompt":
        kind = PromptKind.POSITIVE if positive else PromptKind.NEGATIVE
        patient = () if geometry is None else (tuple(geometry.voxel_to_patient((z, y, x)).tolist()),)
        return cls(kind, (float(z), float(y), float(x)), patient)

    @classmethod
    def box(cls, z: float, y0: float, x0: float, y1: float, x1: float, geometry: Geometry | None = None) -> "Prompt":
        y0, y1 = sorted((float(y0), float(y1)))
        x0, x1 = sorted((float(x0), float(x1)))
        corners = np.array([(z, y0, x0), (z, y1, x1)], dtype=float)
        patient = () if geometry is None else tuple(tuple(p) for p in geometry.voxel_to_patient(corners).tolist())
        return cls(PromptKind.BOX, (float(z), y0, x0, y1, x1), patient)

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "voxel": list(self.voxel), "patient": [list(p) for p in self.patient]}

    @classmethod
    def from_dict(cls, d: dict) -> "Prompt":
        return cls(PromptKind(d["kind"]), tuple(float(v) for v in d["voxel"]),
                   tuple(tuple(float(c) for c in p) for p in d.get("patient", [])))


class PromptHistory:
    """The current prompts plus bounded undo/redo stacks of whole prompt lists (prompt lists are tiny)."""

    def __init__(self, limit: int = 200) -> None:
        self._items: tuple[Prompt, ...] = ()
        self._undo: deque[tuple[Prompt, ...]] = deque(maxlen=limit)
        self._redo: deque[tuple[Prompt, ...]] = deque(maxlen=limit)

    @property
    def items(self) -> tuple[Prompt, ...]:
        return self._items

    def _apply(self, new: tuple[Prompt, ...]) -> None:
        self._undo.append(self._items)
        self._redo.clear()
        self._items = new

    def add(self, prompt: Prompt) -> None:
        self._apply(self._items + (prompt,))

    def remove(self, prompt: Prompt) -> None:
        self._apply(tuple(p for p in self._items if p is not prompt))

    def clear(self) -> None:
        if self._items:
            self._apply(())

    def replace_all(self, prompts) -> None:
        self._apply(tuple(prompts))

    def reset(self, prompts=()) -> None:
        """Set prompts without history (loading a session or a new series)."""
        self._items = tuple(prompts)
        self._undo.clear()
        self._redo.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self._items)
        self._items = self._undo.pop()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self._items)
        self._items = self._redo.pop()
        return True
