"""Mirrored views of a 2D crop, for drawing hypotheses on several looks at one lesion.

View k of a crop is the crop flipped by FLIPS[k] (as is, left-right, up-down, both).  Probabilistic SAM can share its
hypotheses out over V views (hypothesis i on view i % V, decoded from that view's own encoder embedding and prior,
then flipped back): the encoder is far from flip-equivariant, so each view is another look at the crop, as in
test-time augmentation, and the hypotheses cover the raters better (models/probsam-litemedsam.md, "Flipped views").
Each view costs one encoder pass.  Flipping is its own inverse, so the same functions map a result back.
Importing this module does not import torch (models.base does, so it is imported where needed): the GUI takes
MAX_VIEWS from here at start-up.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .base import ModelPrompts

FLIPS = ((False, False), (False, True), (True, False), (True, True))  # (up-down, left-right) of view k
MAX_VIEWS = len(FLIPS)


def checked_views(views: int, where: str = "") -> int:
    """`views` as an int when it is 1..MAX_VIEWS, else ModelError (prefixed by `where`)."""
    if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or not 1 <= views <= MAX_VIEWS:
        from .base import ModelError

        raise ModelError(f"{where + ': ' if where else ''}views must be a whole number from 1 to {MAX_VIEWS}, "
                         f"got {views!r}")
    return int(views)


def flip(array: np.ndarray, view: int) -> np.ndarray:
    """The last two axes of `array` flipped as view `view` flips them (its own inverse), contiguous."""
    up_down, left_right = FLIPS[view]
    if up_down:
        array = array[..., ::-1, :]
    if left_right:
        array = array[..., ::-1]
    return np.ascontiguousarray(array)


def flip_prompts(prompts: ModelPrompts, shape: tuple[int, int], view: int) -> ModelPrompts:
    """Crop-pixel prompts (inclusive box, points) in view `view` of an (H, W) crop."""
    from .base import ModelPrompts

    up_down, left_right = FLIPS[view]
    h, w = shape

    def fy(y: float) -> float:
        return h - 1 - y if up_down else y

    def fx(x: float) -> float:
        return w - 1 - x if left_right else x

    box = None
    if prompts.box is not None:
        y0, x0, y1, x1 = prompts.box
        box = (min(fy(y0), fy(y1)), min(fx(x0), fx(x1)), max(fy(y0), fy(y1)), max(fx(x0), fx(x1)))
    return ModelPrompts(box=box, points=[(fy(y), fx(x), positive) for y, x, positive in prompts.points])


def set_views(engine, views: int) -> None:
    """Share `engine`'s hypotheses out over `views` mirrored views; ModelError for an engine without them (views 1
    is always accepted: it is what every engine does)."""
    views = checked_views(views)
    if hasattr(engine, "views"):
        engine.views = views
    elif views != 1:
        from .base import ModelError

        raise ModelError(f"{getattr(engine, 'title', engine)} draws its hypotheses on the crop as it is: "
                         "mirrored views (--views) are a Probabilistic SAM setting")
