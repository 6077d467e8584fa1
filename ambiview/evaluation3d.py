"""The evaluation protocol of ambiview.evaluation for 3D engines: one item per nodule stack instead of per crop.

Each run of consecutive slices of one nodule (lidc.nodule_stacks, single slices included) is one volume.  A stack no
longer than the engine's `roi_depth` is placed in the middle of a window of that depth, padded with copies of its end
slices (the app's ROI is centred on the prompt's slice; the slices the source dropped are unknown); a longer stack is
given whole.  The engine draws `samples` hypotheses with a per-stack seed from (seed, stack name); the prompt is the
consensus box (or one rater's box, `--prompt rater`) of the stack's middle slice — UP-SAM ignores it.  Metrics are
taken on the real slices only:

- the multi-rater metrics of ambiview.evaluation on the (n, D, H, W) hypotheses against the raters (R, D, H, W);
- Dice, Jaccard, HD95 and ASD (ambiview.uncertainty.surface) of the point prediction against the consensus: the
  engine's `point_prediction(state)` when it has one (UP-SAM: the four EU heads averaged, the paper's prediction), else
  the mean of the hypotheses, thresholded at 0.5.  Distances are in VOXELS: the crops' pixel spacing (0.5-0.9 mm) and
  slice spacing are not in the data, so no millimetre value would be honest.
"""
from __future__ import annotations

import time

import numpy as np

from .evaluation import (
    METRICS,
    EvalOptions,
    EvalReport,
    aggregate,
    bounding_box,
    central_box,
    item_metrics,
    item_rng,
)
from .models.base import ModelPrompts
from .models.lidc import LidcItem, NoduleStack, nodule_stacks
from .models.upsam_data import centred_input
from .uncertainty.surface import overlap_and_surface

SURFACE_METRICS = ("dice", "jaccard", "hd95", "asd")
METRICS_3D = METRICS + SURFACE_METRICS


def stack_name(stack: NoduleStack) -> str:
    return f"{stack.nodule_id}_slices_{stack.slice_indices[0]}-{stack.slice_indices[-1]}"


def stack_prompt(stack: NoduleStack, mode: str, rng: np.random.Generator) -> tuple[ModelPrompts, str]:
    middle = len(stack.slice_indices) // 2
    if mode == "rater":
        drawn = [k for k in range(stack.raters.shape[1]) if stack.raters[middle, k].any()]
        if drawn:
            k = int(drawn[rng.integers(len(drawn))])
            return ModelPrompts(box=bounding_box(stack.raters[middle, k])), f"rater:{k}"
    box = bounding_box(stack.gt[middle])
    if box is not None:
        return ModelPrompts(box=box), "gt" if mode == "gt" else "gt-fallback"
    return ModelPrompts(box=central_box(stack.gt.shape[1:])), "central-fallback"


def evaluate_stacks(options: EvalOptions, engine, items: list[LidcItem], split_dir, progress=None) -> EvalReport:
    """The protocol above for a 3D engine on the crops of one split."""
    depth = int(getattr(engine, "roi_depth", 16))
    stacks = nodule_stacks(items, min_slices=1)
    started = time.perf_counter()
    rows, fallbacks = [], 0
    for index, stack in enumerate(stacks):
        name = stack_name(stack)
        rng = item_rng(options.seed, name)
        seed = int(rng.integers(2**31 - 1))
        prompts, source = stack_prompt(stack, options.prompt, rng)
        fallbacks += source.endswith("fallback")
        image, real = centred_input(stack.scans, depth)
        state = engine.prepare(image)
        probs = engine.sample(state, prompts, options.samples, seed)[:, real]
        point = (engine.point_prediction(state) if hasattr(engine, "point_prediction") else probs.mean(0))[real]
        raters = np.moveaxis(stack.raters, 1, 0)
        row = {"name": name, "slices": len(stack.slice_indices), "n_raters": int(raters.shape[0]),
               "box_from": source, "seed": seed}
        row.update(item_metrics(probs, raters))
        row.update(overlap_and_surface(point > 0.5, stack.gt))
        rows.append(row)
        if progress is not None:
            progress(index + 1, len(stacks))
    protocol = {
        "model": options.model, "title": engine.title, "digest": getattr(engine, "digest", ""),
        "checkpoint": str(getattr(engine, "checkpoint", "") or ""), "device": str(getattr(engine, "device", "cpu")),
        "samples": options.samples, "seed": options.seed, "prompt": options.prompt, "prompt_fallbacks": fallbacks,
        "data": str(split_dir.resolve()), "n_items": len(rows), "items": "nodule stacks", "window": depth,
        "point_prediction": "engine.point_prediction" if hasattr(engine, "point_prediction") else "hypothesis mean",
        "distances": "voxels (crop spacing unknown)", "bootstrap": options.n_boot, "threshold": 0.5,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return EvalReport(protocol, aggregate(rows, options.n_boot, options.seed, METRICS_3D), rows)
