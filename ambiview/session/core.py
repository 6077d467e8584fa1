"""The document a user works on: the open volume, the view state, the prompts.

Plain Python; widgets and the CLI observe it through `subscribe(event, callback)`.  Events and their payloads:

- "volume_changed" (volume)            a series was opened or closed
- "cursor_changed" (cursor)            the (z, y, x) crosshair moved; cursor[0] is the axial slice shown
- "window_changed" (center, width)     window/level in HU
- "prompts_changed" (prompts)          prompts added, removed, cleared, undone or redone
- "result_changed" (result)            a new set of hypotheses (or None)
- "hypothesis_changed" (index)         the hypothesis the slider shows
- "kept_changed" (kept)                an item was kept, renamed or removed
- "experts_changed" (experts, revealed) reference contours (raters, RTSTRUCT ROIs) set, or shown/hidden
"""
from __future__ import annotations

from ..imaging.volume import Volume
from ..imaging.windowing import DEFAULT_PRESET, PRESETS
from .events import Observable
from .kept import KEEP_COLOURS, ExpertMask, KeptItem
from .prompts import Prompt, PromptHistory
from .result import SegmentationResult


class Session(Observable):
    def __init__(self) -> None:
        super().__init__()
        self.volume: Volume | None = None
        self.cursor: tuple[int, int, int] = (0, 0, 0)
        self.window: tuple[float, float] = PRESETS[DEFAULT_PRESET]
        self.history = PromptHistory()
        self.result: SegmentationResult | None = None
        self.hypothesis = 0
        self.kept: list[KeptItem] = []
        self.experts: list[ExpertMask] = []
        self.experts_revealed = True

    # --- the series -------------------------------------------------------------------------------------------------
    def set_volume(self, volume: Volume | None) -> None:
        self.volume = volume
        self.history.reset()
        self.result, self.hypothesis, self.kept, self.experts = None, 0, [], []
        if volume is not None:
            self.cursor = tuple(n // 2 for n in volume.shape)
        self.emit("volume_changed", volume=volume)
        self.emit("cursor_changed", cursor=self.cursor)
        self.emit("prompts_changed", prompts=self.prompts)
        self.emit("result_changed", result=None)
        self.emit("kept_changed", kept=self.kept)
        self.emit("experts_changed", experts=self.experts, revealed=self.experts_revealed)

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

    # --- results ----------------------------------------------------------------------------------------------------
    def set_result(self, result: SegmentationResult | None) -> None:
        self.result = result
        self.hypothesis = 0
        self.emit("result_changed", result=result)
        self.emit("hypothesis_changed", index=0)

    def set_hypothesis(self, index: int) -> None:
        if self.result is None:
            return
        index = int(index) % self.result.n
        if index != self.hypothesis:
            self.hypothesis = index
            self.emit("hypothesis_changed", index=index)

    # --- kept items -------------------------------------------------------------------------------------------------
    def keep(self, kind: str, mask, name: str | None = None, description: str = "") -> KeptItem:
        """Keep a mask (ROI grid of the current result) as a named item.  Empty masks are refused."""
        result = self.result
        if result is None:
            raise ValueError("there are no hypotheses to keep yet")
        item = KeptItem(name=name or self._unique_name(kind), kind=kind, mask=mask, roi=result.roi,
                        volume_shape=result.volume_shape, model=result.model, model_title=result.model_title,
                        digest=result.digest, description=description, series_uid=result.series_uid,
                        color=KEEP_COLOURS[len(self.kept) % len(KEEP_COLOURS)])
        if item.is_empty:
            raise ValueError(f"{item.name} is empty: there is nothing to keep")
        self.kept.append(item)
        self.emit("kept_changed", kept=self.kept)
        return item

    def remove_kept(self, item: KeptItem) -> None:
        self.kept = [k for k in self.kept if k is not item]
        self.emit("kept_changed", kept=self.kept)

    def rename_kept(self, item: KeptItem, name: str) -> None:
        item.name = name.strip() or item.name
        self.emit("kept_changed", kept=self.kept)

    def _unique_name(self, kind: str) -> str:
        names = {k.name for k in self.kept}
        i = 1
        while f"{kind} {i}" in names:
            i += 1
        return f"{kind} {i}"

    # --- expert reference contours (teaching) -----------------------------------------------------------------------
    def set_experts(self, experts, revealed: bool | None = None) -> None:
        """Reference masks on the volume grid: the raters of an LIDC crop or the ROIs of an RTSTRUCT."""
        self.experts = list(experts)
        if revealed is not None:
            self.experts_revealed = bool(revealed)
        self.emit("experts_changed", experts=self.experts, revealed=self.experts_revealed)

    def reveal_experts(self, revealed: bool = True) -> None:
        """Hide-and-reveal: the model's spread first, the experts' on request."""
        if bool(revealed) != self.experts_revealed:
            self.experts_revealed = bool(revealed)
            self.emit("experts_changed", experts=self.experts, revealed=self.experts_revealed)

    # --- persistence ------------------------------------------------------------------------------------------------
    def view_state(self) -> dict:
        return {"cursor": list(self.cursor), "window": list(self.window), "hypothesis": self.hypothesis}

    def restore(self, saved) -> None:
        """Bring back a SavedSession (autosave.load) onto the open volume of the same series."""
        if self.volume is None or self.volume.identity.series_uid != saved.series_uid:
            raise ValueError("the saved session belongs to another series")
        self.history.reset(saved.prompts)
        self.kept = list(saved.kept)
        self.emit("prompts_changed", prompts=self.prompts)
        self.emit("kept_changed", kept=self.kept)
        if saved.result is not None:
            self.set_result(saved.result)
        view = saved.view or {}
        if "window" in view:
            self.set_window(*view["window"])
        if "cursor" in view:
            self.set_cursor(*view["cursor"])
        if saved.result is not None and "hypothesis" in view:
            self.set_hypothesis(view["hypothesis"])
