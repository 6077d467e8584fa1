"""The document a user works on: the open volume, the view state, the prompts.

Plain Python; widgets and the CLI observe it through `subscribe(event, callback)`.  Events and their payloads:

- "volume_changed" (volume)            a series was opened or closed
- "cursor_changed" (cursor)            the (z, y, x) crosshair moved; cursor[0] is the axial slice shown
- "window_changed" (center, width)     window/level in HU
- "prompts_changed" (prompts)          prompts added, removed, cleared, undone or redone
"""
from __future__ import annotations

from ..imaging.volume import Volume
from ..imaging.windowing import DEFAULT_PRESET, PRESETS
from .events import Observable
from .prompts import Prompt, PromptHistory


class Session(Observable):
    def __init__(self) -> None:
        super().__init__()
        self.volume: Volume | None = None
        self.cursor: tuple[int, int, int] = (0, 0, 0)
        self.window: tuple[float, float] = PRESETS[DEFAULT_PRESET]
        self.history = PromptHistory()

    # --- the series -------------------------------------------------------------------------------------------------
    def set_volume(self, volume: Volume | None) -> None:
        self.volume = volume
        self.history.reset()
        if volume is not None:
            self.cursor = tuple(n // 2 for n in volume.shape)
        self.emit("volume_changed", volume=volume)
        self.emit("cursor_changed", cursor=self.cursor)
        self.emit("prompts_changed", prompts=self.prompts)

    # --- view state -------------------------------------------------------------------------------------------------
    def set_cursor(self, z: int, y: int, x: int) -> None:
        if self.volume is not None:
            nz, ny, nx = self.volume.shape
            z, y, x = min(max(int(z), 0), nz - 1), min(max(int(y), 0), ny - 1), min(max(int(x), 0), nx - 1)
        new = (int(z), int(y), int(x))
        if new != self.cursor:
            self.cursor = new
            self.emit("cursor_changed", cursor=new)

    def set_slice(self, z: int) -> None:
        self.set_cursor(z, self.cursor[1], self.cursor[2])

    def step_slice(self, delta: int) -> None:
        self.set_slice(self.cursor[0] + delta)

    def set_window(self, center: float, width: float) -> None:
        new = (float(center), max(float(width), 1.0))
        if new != self.window:
            self.window = new
            self.emit("window_changed", center=new[0], width=new[1])

    def apply_preset(self, name: str) -> None:
        self.set_window(*PRESETS[name])

    # --- prompts ----------------------------------------------------------------------------------------------------
    @property
    def prompts(self) -> tuple[Prompt, ...]:
        return self.history.items

    def _prompts_changed(self) -> None:
        self.emit("prompts_changed", prompts=self.prompts)

    def add_point(self, z: float, y: float, x: float, positive: bool = True) -> Prompt:
        geometry = self.volume.geometry if self.volume is not None else None
        prompt = Prompt.point(z, y, x, positive, geometry)
        self.history.add(prompt)
        self._prompts_changed()
        return prompt

    def add_box(self, z: float, y0: float, x0: float, y1: float, x1: float) -> Prompt:
        geometry = self.volume.geometry if self.volume is not None else None
        prompt = Prompt.box(z, y0, x0, y1, x1, geometry)
        self.history.add(prompt)
        self._prompts_changed()
        return prompt

    def clear_prompts(self) -> None:
        self.history.clear()
        self._prompts_changed()

    def undo(self) -> bool:
        done = self.history.undo()
        if done:
            self._prompts_changed()
        return done

    def redo(self) -> bool:
        done = self.history.redo()
        if done:
            self._prompts_changed()
        return done
