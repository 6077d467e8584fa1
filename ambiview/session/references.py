"""Reference ("expert") masks for compare mode: the raters of an LIDC crop, the ROIs of an RTSTRUCT beside the series,
and how the model's hypotheses compare with them (no Qt)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..uncertainty.compare import SetComparison, compare_sets
from .kept import ExpertMask
from .placement import hypotheses_in_region, roi_region

# Raters are drawn white (a colour no hypothesis has), told apart by dash pattern; RTSTRUCT ROIs keep the file's
# colour, and one without gets the next of these light colours.
RATER_COLOUR = (255, 255, 255)
EXPERT_COLOURS = [(255, 255, 255), (255, 130, 200), (120, 230, 255), (170, 255, 120), (200, 170, 255),
                  (255, 205, 140)]


class ReferenceFileError(ValueError):
    """A reference file that cannot be used; the message names it and the problem."""


def expert_colour(i: int) -> tuple[int, int, int]:
    return EXPERT_COLOURS[i % len(EXPERT_COLOURS)]


def experts_from_raters(case) -> list[ExpertMask]:
    """The radiologists' masks of an LIDC case (imaging.lidc_study.LidcCase), one ExpertMask each."""
    return [ExpertMask(name, np.asarray(case.raters[i], bool), RATER_COLOUR, f"LIDC-IDRI {case.run.nodule_id}")
            for i, name in enumerate(case.rater_names)]


def rtstructs_beside(scan) -> list[Path]:
    """RTSTRUCT files the scan of the opened folder found (ScanResult.non_image_files)."""
    from ..export.rtstruct_read import rtstructs_among

    return rtstructs_among(getattr(scan, "non_image_files", []) or [])


def experts_from_rtstruct(path, volume, first_colour: int = 0) -> tuple[list[ExpertMask], list[str]]:
    """Every ROI of an RTSTRUCT that draws something on `volume`, as ExpertMasks, plus the reader's messages.

    Raises ReferenceFileError naming the file when it is not a usable RT Structure Set.
    """
    from ..export.items import ExportError
    from ..export.rtstruct_read import load_rtstruct

    path = Path(path)
    try:
        rois, messages = load_rtstruct(path, volume)
    except ExportError as exc:
        raise ReferenceFileError(str(exc)) from exc
    experts = []
    for roi in rois:
        messages += roi.messages
        if roi.mask is None or not roi.mask.any():
            continue
        colour = tuple(roi.color) if roi.color else expert_colour(first_colour + len(experts))
        experts.append(ExpertMask(roi.name, roi.mask, colour, path.name))
    if not experts:
        messages.append(f"{path.name}: no ROI of this file draws anything on the open series")
    return experts, messages


def compare_with_experts(result, experts) -> SetComparison | None:
    """GED, HM-IoU and diversities of the result's hypotheses against the experts, on the ROI's region
    (the prompted slice of a 2D result, the slab of a 3D one); None without a result or experts."""
    if result is None or not experts:
        return None
    shape = tuple(result.volume_shape)
    for expert in experts:
        if tuple(expert.mask.shape) != shape:
            raise ValueError(f"reference '{expert.name}' has shape {tuple(expert.mask.shape)}, the series {shape}")
    region = roi_region(result.roi, shape)
    if any(s.stop <= s.start for s in region):
        return None  # the ROI lies outside the volume: nothing to compare
    samples = hypotheses_in_region(result)
    references = np.stack([np.asarray(e.mask[region], bool) for e in experts])
    return compare_sets(samples, references)
