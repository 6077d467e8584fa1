"""From prompts on a volume to a SegmentationResult: ROI choice, crop, engine, and the prepared-state cache.

Shared by `ambiview-cli segment` and the app's inference worker, so both answer the same question the same way.
Which prompts count: those on the slice of the most recent prompt.  The ROI comes from the last box on that slice
(grown for a large box, see imaging/roi.py); without a box, a native-spacing crop centred on the positive points.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..imaging.roi import Roi, standardise
from ..imaging.volume import Volume
from .prompts import Prompt, PromptKind
from .result import SegmentationResult


class PromptError(ValueError):
    """Prompts that an engine cannot answer (no prompt, a point for a box-only engine); the message says why."""


@dataclass(frozen=True)
class SegmentRequest:
    """An immutable snapshot of what to compute (the worker gets this, never the live session)."""

    prompts: tuple[Prompt, ...]
    n: int
    seed: int
    request_id: int = 0
    views: int = 1  # mirrored views of the crop (engines with `views`: Probabilistic SAM)


def views_note(views: int) -> str:
    """' · 4 mirrored views' for hypotheses drawn on more than one mirrored view (models.mirror_views), else '':
    a result's model title says how it was drawn."""
    return f" · {views} mirrored views" if views > 1 else ""


def active_prompts(prompts) -> tuple[Prompt, ...]:
    """The prompts on the slice of the most recent one."""
    prompts = tuple(prompts)
    if not prompts:
        return ()
    z = prompts[-1].z
    return tuple(p for p in prompts if p.z == z)


def roi_for(prompts, volume: Volume, crop_size: int = 64, depth: int = 1) -> Roi:
    """The ROI a set of prompts (on one slice) selects."""
    prompts = active_prompts(prompts)
    if not prompts:
        raise PromptError("place a point or a box on the lesion first")
    boxes = [p for p in prompts if p.kind is PromptKind.BOX]
    if boxes:
        z, y0, x0, y1, x1 = boxes[-1].voxel
        roi = Roi.for_box(int(round(z)), y0, x0, y1, x1, size=crop_size, depth=depth)
    else:
        positives = [p for p in prompts if p.kind is PromptKind.POSITIVE]
        if not positives:
            raise PromptError("a negative point alone does not say where the lesion is: add a positive point or a box")
        ys = [p.voxel[1] for p in positives]
        xs = [p.voxel[2] for p in positives]
        spread = max(max(ys) - min(ys), max(xs) - min(xs))  # several points hint at a larger lesion
        roi = Roi.around(positives[-1].z, float(np.mean(ys)), float(np.mean(xs)), spread, crop_size, depth)
    return roi.clipped_to(volume.shape[0]) if depth > 1 else roi


def model_prompts(prompts, roi: Roi, accepts: frozenset[str]):
    """Session prompts -> the engine's ModelPrompts in crop coordinates; refuses what the engine cannot take."""
    from ..models.base import ModelPrompts  # models stays below session; imported late to keep start-up light

    prompts = active_prompts(prompts)
    boxes = [p for p in prompts if p.kind is PromptKind.BOX]
    points = [p for p in prompts if p.kind is not PromptKind.BOX]
    out = ModelPrompts()
    if boxes:
        _, y0, x0, y1, x1 = boxes[-1].voxel
        out.box = roi.box_to_model(y0, x0, y1, x1)
    if points:
        if "point" not in accepts:
            if not boxes:
                raise PromptError("this model needs a box around the lesion (draw one with the box tool)")
        else:
            for p in points:
                (my,), (mx,) = roi.volume_to_model([p.voxel[1]], [p.voxel[2]])
                out.points.append((float(my), float(mx), p.kind is PromptKind.POSITIVE))
    if out.box is None and "box" in accepts and "point" not in accepts:
        raise PromptError("this model needs a box around the lesion (draw one with the box tool)")
    return out


class PreparedCache:
    """Prepared engine states keyed by (series, ROI, engine, checkpoint digest); a few entries, least recent dropped.

    The key includes a fingerprint of the crop itself, so a changed volume can never reuse a stale embedding.
    """

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple, Any] = OrderedDict()

    def get_or_prepare(self, key: tuple, prepare: Callable[[], Any]) -> tuple[Any, bool]:
        """(state, was_cached)."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key], True
        state = prepare()
        self._items[key] = state
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return state, False

    def __contains__(self, key: tuple) -> bool:
        return key in self._items

    def clear(self) -> None:
        self._items.clear()


def crop_for(volume: Volume, roi: Roi) -> np.ndarray:
    """(depth, size, size) standardised crop, the training crops' normalisation."""
    return standardise(roi.crop(volume.voxels))


def state_key(volume: Volume, roi: Roi, engine, crop: np.ndarray) -> tuple:
    fingerprint = hashlib.blake2b(np.ascontiguousarray(crop).tobytes(), digest_size=16).hexdigest()
    return (volume.identity.series_uid, roi, engine.name, engine.digest, fingerprint)


def segment(volume: Volume, prompts, engine, n: int, seed: int, cache: PreparedCache | None = None,
            on_sample=None, cancel=None, on_prepared: Callable[[bool], None] | None = None) -> SegmentationResult:
    """Run `engine` on the ROI the prompts select and return the hypotheses with their geometry.

    on_sample(done, batch) streams hypotheses; cancel() stops at the next batch; on_prepared(was_cached) fires after
    the prompt-independent step.
    """
    depth = getattr(engine, "roi_depth", 1) if engine.dims == 3 else 1
    roi = roi_for(prompts, volume, engine.crop_size, depth)
    mp = model_prompts(prompts, roi, engine.accepts)
    crop = crop_for(volume, roi)
    image = crop if engine.dims == 3 else crop[0]
    key = state_key(volume, roi, engine, image)
    cache = cache if cache is not None else PreparedCache(1)
    state, cached = cache.get_or_prepare(key, lambda: engine.prepare(image))
    if on_prepared is not None:
        on_prepared(cached)
    probs = engine.sample(state, mp, n, seed, on_sample=on_sample, cancel=cancel)
    ident = volume.identity
    return SegmentationResult(
        probs=np.asarray(probs, np.float32), roi=roi, roi_geometry=roi.geometry(volume.geometry),
        volume_shape=volume.shape, series_uid=ident.series_uid, study_uid=ident.study_uid,
        frame_of_reference_uid=ident.frame_of_reference_uid, model=engine.name,
        model_title=engine.title + views_note(getattr(engine, "views", 1)),
        digest=engine.digest, seed=seed, prompts=[p.to_dict() for p in active_prompts(prompts)])
