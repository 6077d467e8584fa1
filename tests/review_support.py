"""Fake results for the tests of the review panels: no model, known hypotheses on a known ROI."""
from __future__ import annotations

import numpy as np

from ambiview.imaging.roi import Roi
from ambiview.session.result import SegmentationResult

# native spacing on slice 3: model pixel (r, c) is volume voxel (3, 2 + r, 4 + c)
FAKE_ROI = Roi(3, 4, top=1.5, left=3.5, extent=16.0, size=16)


def fake_probs() -> np.ndarray:
    """Hypotheses 1-3 nearly agree (6x6 squares, the third shifted by a pixel); hypothesis 4 is a 10-pixel bar."""
    probs = np.zeros((4, 16, 16), np.float32)
    for k in range(3):
        probs[k, 2:8, 2 + k // 2:8 + k // 2] = 0.9
    probs[3, 12, 2:12] = 0.8
    return probs


def fake_result(volume, probs=None, roi: Roi = FAKE_ROI, model: str = "fake") -> SegmentationResult:
    ident = volume.identity
    probs = fake_probs() if probs is None else probs
    return SegmentationResult(probs, roi, roi.geometry(volume.geometry), volume.shape, series_uid=ident.series_uid,
                              study_uid=ident.study_uid, frame_of_reference_uid=ident.frame_of_reference_uid,
                              model=model, model_title="Fake engine", digest="cd" * 6, seed=7,
                              prompts=[{"kind": "box", "voxel": [3, 4, 6, 12, 14]}])
