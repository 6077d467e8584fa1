"""Evaluate an engine (or a reference built from the annotations) on multi-rater crops laid out like lidc-crops64.

Protocol, per crop: the prompt is a box, the inclusive bounding box of the consensus mask (`prompt="gt"`) or of one
rater's mask (`prompt="rater"`: one rater drawn at random among those whose mask is not empty, seeded per crop; when
every rater left the slice empty, the consensus box is used, and failing that the central 25-75 % box, as the
Probabilistic SAM training does; such fallbacks are counted).  The engine draws `samples` hypotheses with a per-crop
seed derived from (seed, crop name), so a crop gets the same hypotheses whatever --limit or order.  The hypotheses
are compared with all raters of the crop (empty masks included, as in Kohl et al. 2018).

Metrics (ambiview.uncertainty.metrics): GED, HM-IoU, Collective Insight and diversity on the hypotheses thresholded
at 0.5; soft Dice on the thresholded hypotheses too (mean of binary masks > tau, the usual reading); NCC on the
probabilities, as PHiSeg defines it on softmax outputs (NaN where undefined, e.g. identical binary hypotheses; the
aggregate ignores NaNs and says how many there were).  Aggregates: mean with a 95 % percentile bootstrap interval.

Two reference "models" need no engine:
- ``ref-consensus``: the consensus mask repeated n times, a perfect deterministic model;
- ``ref-raters``: the raters themselves resampled to n: each rater floor(n / R) times, the remaining n mod R drawn
  without replacement (seeded per crop); for n a multiple of R its GED is exactly 0.
"""
from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .models.base import ModelPrompts
from .models.lidc import LidcItem, check_split, load_split
from .models.mirror_views import set_views
from .uncertainty.bootstrap import bootstrap_ci
from .uncertainty.metrics import collective_insight, diversity, ged, hm_iou, ncc, soft_dice

REFERENCES = ("ref-consensus", "ref-raters")
PROMPT_MODES = ("gt", "rater")
METRICS = ("ged", "hm_iou", "soft_dice", "ncc", "ci", "diversity")
SHORT = {"ged": "GED", "hm_iou": "HM-IoU", "soft_dice": "soft-Dice", "ncc": "NCC", "ci": "CI", "diversity": "div",
         "dice": "Dice", "jaccard": "Jaccard", "hd95": "HD95", "asd": "ASD"}  # the last four: 3D engines
LABELS = {"ged": "GED ↓", "hm_iou": "HM-IoU ↑", "soft_dice": "soft Dice ↑", "ncc": "NCC ↑", "ci": "CI ↑",
          "diversity": "diversity", "dice": "Dice ↑", "jaccard": "Jaccard ↑", "hd95": "HD95 (vox) ↓",
          "asd": "ASD (vox) ↓"}
CENTRAL_SHARE = 0.25  # the central box spans 25-75 % of the crop


class EvaluationError(Exception):
    """Bad evaluation input (data folder, model name, options); the message names the problem."""


@dataclass
class EvalOptions:
    model: str
    data: Path
    split: str | None = None
    samples: int = 16
    seed: int = 0
    prompt: str = "gt"
    device: str | None = None
    limit: int | None = None
    n_boot: int = 2000
    every: int = 1  # keep every k-th crop (name order), before `limit`
    views: int | None = None  # mirrored views per crop (Probabilistic SAM's `views`); None: the engine's own


@dataclass
class EvalReport:
    protocol: dict
    aggregate: dict
    items: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "aggregate": self.aggregate, "items": self.items}


# ---------------------------------------------------------------------------------------------------------- data


def resolve_split(data: Path, split: str | None = None) -> Path:
    """The split folder: `data` itself when laid out as a split, else `data/split` (e.g. the lidc-crops64 root)."""
    data = Path(data)
    if not data.is_dir():
        raise EvaluationError(f"{data}: no such folder")
    if split:
        return _checked(data / split)
    if (data / "scans").is_dir():
        return _checked(data)
    subs = sorted(p.name for p in data.iterdir() if p.is_dir() and (p / "scans").is_dir())
    hint = f" (it holds the splits {', '.join(subs)}: add --split NAME)" if subs else ""
    raise EvaluationError(f"{data}: not a lidc-crops64 split (expected scans/, masks/annots/, masks/GT/){hint}")


def _checked(split_dir: Path) -> Path:
    try:
        return check_split(split_dir)
    except Exception as exc:  # LidcDataError: already names the folder and what is missing
        raise EvaluationError(str(exc)) from exc


def item_rng(seed: int, name: str) -> np.random.Generator:
    """A generator that depends only on (seed, crop name)."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive (y0, x0, y1, x1) of a mask's foreground, None when empty."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())


def central_box(shape: tuple[int, int]) -> tuple[int, int, int, int]:
    h, w = shape
    return (int(h * (0.5 - CENTRAL_SHARE)), int(w * (0.5 - CENTRAL_SHARE)), int(h * (0.5 + CENTRAL_SHARE)),
            int(w * (0.5 + CENTRAL_SHARE)))


def prompt_box(item: LidcItem, mode: str, rng: np.random.Generator) -> tuple[tuple[int, int, int, int], str]:
    """The box prompt of a crop and where it came from ("gt", "rater:K", "gt-fallback" or "central-fallback")."""
    if mode == "rater":
        drawn = [k for k in range(item.raters.shape[0]) if item.raters[k].any()]
        if drawn:
            k = int(drawn[rng.integers(len(drawn))])
            return bounding_box(item.raters[k]), f"rater:{k}"
    box = bounding_box(item.gt)
    if box is not None:
        return box, "gt" if mode == "gt" else "gt-fallback"
    return central_box(item.gt.shape), "central-fallback"


def reference_samples(name: str, item: LidcItem, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, H, W) float32 hypotheses of a reference row (see the module docstring)."""
    if name == "ref-consensus":
        return np.repeat(item.gt[None], n, axis=0).astype(np.float32)
    raters = item.raters
    r = raters.shape[0]
    picks = np.concatenate([np.tile(np.arange(r), n // r), rng.choice(r, size=n % r, replace=False)])
    return raters[np.sort(picks)].astype(np.float32)


# ------------------------------------------------------------------------------------------------------- metrics


def item_metrics(probs: np.ndarray, raters: np.ndarray) -> dict[str, float]:
    """All metrics of one crop: hypotheses (n, H, W) probabilities against raters (R, H, W) bool."""
    masks = probs > 0.5
    ci = collective_insight(masks, raters)
    return {
        "ged": ged(masks, raters),
        "hm_iou": hm_iou(masks, raters),
        "soft_dice": soft_dice(masks, raters),
        "ncc": ncc(np.clip(probs, 0.0, 1.0), raters),
        "ci": ci["ci"],
        "diversity": diversity(masks),
    }


def aggregate(items: list[dict], n_boot: int, seed: int, metrics: tuple[str, ...] = METRICS) -> dict:
    """Per metric: mean of the finite values, 95 % bootstrap interval, count and NaN count."""
    out = {}
    for metric in metrics:
        values = np.array([row[metric] for row in items], dtype=np.float64)
        mean, lo, hi = bootstrap_ci(values, n_boot=n_boot, alpha=0.05, seed=seed)
        out[metric] = {"mean": mean, "lo": lo, "hi": hi, "n": int(np.isfinite(values).sum()),
                       "n_nan": int((~np.isfinite(values)).sum())}
    return out


# ------------------------------------------------------------------------------------------------------ evaluate

Progress = Callable[[int, int], None]


def load_engine(name: str, device: str | None = None):
    """An engine from the registry (installed checkpoint, built-in, or .safetensors path); EvaluationError if none."""
    from .models.base import ModelError
    from .models.registry import load_engine as registry_load

    if name in REFERENCES:
        raise EvaluationError(f"{name} is a reference row computed from the annotations, not an engine")
    try:
        return registry_load(name, device)
    except ModelError as exc:
        raise EvaluationError(str(exc)) from exc


def evaluate(options: EvalOptions, progress: Progress | None = None, engine=None) -> EvalReport:
    """Run the protocol on one model; `engine` may be passed in (else loaded by name unless a reference row)."""
    if options.samples < 1:
        raise EvaluationError(f"--samples must be at least 1, got {options.samples}")
    if options.prompt not in PROMPT_MODES:
        raise EvaluationError(f"unknown prompt mode {options.prompt!r} (use {' or '.join(PROMPT_MODES)})")
    if options.limit is not None and options.limit < 1:
        raise EvaluationError(f"--limit must be at least 1, got {options.limit}")
    if options.n_boot < 1:
        raise EvaluationError(f"--bootstrap must be at least 1, got {options.n_boot}")
    if options.every < 1:
        raise EvaluationError(f"--every must be at least 1, got {options.every}")
    split_dir = resolve_split(options.data, options.split)
    try:
        items = load_split(split_dir, options.limit if options.every == 1 else None)
    except Exception as exc:  # LidcDataError names the file
        raise EvaluationError(str(exc)) from exc

    is_reference = options.model in REFERENCES
    if engine is None and not is_reference:
        engine = load_engine(options.model, options.device)
    if options.views is not None and not is_reference:
        set_views(engine, options.views)
    if getattr(engine, "dims", 2) == 3:  # volumes: one item per nodule stack (evaluation3d.py)
        from .evaluation3d import evaluate_stacks

        if options.every != 1:
            raise EvaluationError("--every keeps single crops: 3D engines are scored per nodule stack, use --limit")
        return evaluate_stacks(options, engine, items, split_dir, progress)
    items = items[::options.every][:options.limit]
    started = time.perf_counter()
    rows = []
    fallbacks = 0
    for index, item in enumerate(items):
        rng = item_rng(options.seed, item.name)
        item_seed = int(rng.integers(2**31 - 1))  # drawn first: the same for both prompt modes
        box, source = prompt_box(item, options.prompt, rng)
        fallbacks += source.endswith("fallback")
        if is_reference:
            probs = reference_samples(options.model, item, options.samples, rng)
        else:
            state = engine.prepare(item.scan)
            probs = engine.sample(state, ModelPrompts(box=box), options.samples, item_seed)
        row = {"name": item.name, "n_raters": int(item.raters.shape[0]),
               "empty_raters": int(sum(not m.any() for m in item.raters)), "box": list(box), "box_from": source,
               "seed": item_seed}
        row.update(item_metrics(probs, item.raters))
        rows.append(row)
        if progress is not None:
            progress(index + 1, len(items))
    seconds = time.perf_counter() - started
    protocol = {
        "model": options.model,
        "title": getattr(engine, "title", _reference_title(options.model)),
        "digest": getattr(engine, "digest", ""),
        "checkpoint": str(getattr(engine, "checkpoint", "") or ""),
        "device": str(getattr(engine, "device", "cpu")),
        "samples": options.samples,
        "views": getattr(engine, "views", 1),
        "seed": options.seed,
        "prompt": "none (from annotations)" if is_reference else options.prompt,
        "prompt_fallbacks": fallbacks,
        "data": str(split_dir.resolve()),
        "n_items": len(rows),
        "every": options.every,
        "bootstrap": options.n_boot,
        "threshold": 0.5,
        "seconds": round(seconds, 2),
    }
    return EvalReport(protocol, aggregate(rows, options.n_boot, options.seed), rows)


def _reference_title(name: str) -> str:
    return {"ref-consensus": "Reference: consensus repeated (perfect deterministic)",
            "ref-raters": "Reference: the raters resampled"}.get(name, name)


# ------------------------------------------------------------------------------------------------------- reports


def _fmt(stats: dict, digits: int = 3) -> str:
    if stats["n"] == 0:
        return "n/a"
    return f"{stats['mean']:.{digits}f} [{stats['lo']:.{digits}f}, {stats['hi']:.{digits}f}]"


def model_label(protocol: dict) -> str:
    """The model's name, with its mirrored views when there are several."""
    views = protocol.get("views", 1)
    return protocol["model"] + (f" ({views} views)" if views > 1 else "")


def text_row(report: EvalReport) -> str:
    """One readable line per model."""
    agg = report.aggregate
    proto = report.protocol
    items = f"{proto['n_items']} {proto.get('items', 'crops')}"
    parts = [f"{model_label(proto)} (prompt {proto['prompt']}, n={proto['samples']}, {items}):"]
    for metric in agg:
        text = f"{SHORT[metric]} {_fmt(agg[metric])}"
        if agg[metric]["n_nan"]:
            text += f" ({agg[metric]['n_nan']} NaN)"
        parts.append(text)
    return "  ".join(parts)


def markdown_table(reports: list[EvalReport]) -> str:
    """A markdown table, one row per report: mean [95 % bootstrap interval] per metric."""
    metrics = list(reports[0].aggregate) if reports else list(METRICS)
    head = ["model", "prompt", "digest"] + [LABELS[m] for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for report in reports:
        agg, proto = report.aggregate, report.protocol
        cells = [f"`{model_label(proto)}`", "—" if proto["model"] in REFERENCES else proto["prompt"],
                 f"`{proto['digest']}`" if proto["digest"] else "—"]
        for metric in metrics:
            cell = _fmt(agg[metric])
            if agg[metric]["n_nan"]:
                cell += f" ({agg[metric]['n_nan']} NaN)"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    first = reports[0].protocol if reports else {}
    if first:
        lines.append("")
        unit = "stack" if first.get("items") == "nodule stacks" else "crop"
        lines.append(f"{first['n_items']} {unit}s of `{first['data']}`, {first['samples']} hypotheses per {unit}, "
                     f"seed {first['seed']}; mean [95 % bootstrap interval, {first['bootstrap']} resamples]; NaN: "
                     f"{unit}s where the metric is undefined (NCC: identical hypotheses; HD95, ASD: an empty mask), "
                     "left out of its mean.")
    return "\n".join(lines)


def finite_or_none(value):
    """JSON has no NaN: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    return value
