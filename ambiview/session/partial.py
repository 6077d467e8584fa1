"""A result built from the hypotheses streamed so far, so the first one can be shown before the last is drawn.

The inference worker streams probability batches only; their ROI is the one `segment` chose for the same prompts.
`roi_for` is deterministic, and the batch shape tells the crop size and (3-D) depth, so the ROI is rebuilt here
exactly.  The final result from the worker replaces this one when it arrives.
"""
from __future__ import annotations

import numpy as np

from ..imaging.volume import Volume
from .result import SegmentationResult
from .segment import active_prompts, roi_for


def partial_geometry(volume: Volume, prompts, probs: np.ndarray):
    """The ROI `Geometry` of hypotheses `probs` (k, S, S) or (k, D, S, S) for `prompts` on `volume` (as in
    `partial_result`)."""
    probs = np.asarray(probs)
    if probs.ndim not in (3, 4):
        raise ValueError(f"expected a stack of hypotheses (k, S, S) or (k, D, S, S), got shape {probs.shape}")
    depth = probs.shape[1] if probs.ndim == 4 else 1
    return roi_for(prompts, volume, crop_size=probs.shape[-1], depth=depth).geometry(volume.geometry)


def partial_result(volume: Volume, prompts, probs: np.ndarray, model: str = "", model_title: str = "",
                   digest: str = "", seed: int = 0) -> SegmentationResult:
    """The hypotheses `probs` (k, S, S) or (k, D, S, S) drawn so far for `prompts` on `volume`, placed like
    `session.segment.segment` places them."""
    probs = np.asarray(probs, np.float32)
    if probs.ndim not in (3, 4) or probs.shape[0] == 0:
        raise ValueError(f"expected a stack of hypotheses (k, S, S) or (k, D, S, S), got shape {probs.shape}")
    depth = probs.shape[1] if probs.ndim == 4 else 1
    roi = roi_for(prompts, volume, crop_size=probs.shape[-1], depth=depth)
    ident = volume.identity
    return SegmentationResult(
        probs=probs, roi=roi, roi_geometry=roi.geometry(volume.geometry), volume_shape=volume.shape,
        series_uid=ident.series_uid, study_uid=ident.study_uid, frame_of_reference_uid=ident.frame_of_reference_uid,
        model=model, model_title=model_title, digest=digest, seed=int(seed),
        prompts=[p.to_dict() for p in active_prompts(prompts)])
