"""How much of the raters' own masks a box bound would cut: the data behind `ProbSamConfig.box_margin`.

For each margin, on one split of lidc-crops64: the share of all raters' foreground that lies outside the box grown by
the margin, and the GED of the raters themselves with that part cut (0 when nothing is cut; ambiview.uncertainty),
for two boxes: the consensus mask's (the evaluation's `--prompt gt`) and each drawing rater's own in turn (`--prompt
rater`, closer to a user who boxes the lesion as they see it).  Choose the margin on `train`.

    .venv/bin/python benchmarks/box_bound.py --split train --margins 0,2,3,5,8
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ambiview.evaluation import bounding_box  # noqa: E402
from ambiview.models.base import box_support  # noqa: E402
from ambiview.models.lidc import load_split  # noqa: E402
from ambiview.paths import shared_data_dir  # noqa: E402
from ambiview.uncertainty.metrics import ged  # noqa: E402


def cut_by_box(raters: np.ndarray, box: tuple[int, int, int, int], margin: float) -> tuple[int, float]:
    """(foreground pixels outside the grown box, GED of the cut raters against the raters)."""
    support = box_support(box, raters.shape[1:], margin)
    cut = raters & support
    return int((raters & ~support).sum()), ged(cut.astype(np.float32), raters.astype(np.float32))


def measure(items, margin: float) -> dict:
    stats = {"consensus": [0, []], "rater": [0, []]}
    foreground = 0
    for item in items:
        raters = item.raters.astype(bool)
        foreground += int(raters.sum())
        box = bounding_box(item.gt)
        if box is not None:
            outside, cost = cut_by_box(raters, box, margin)
            stats["consensus"][0] += outside
            stats["consensus"][1].append(cost)
        drawn = [bounding_box(mask) for mask in raters if mask.any()]
        for rater_box in drawn:  # every drawing rater's box in turn; shares averaged over the boxes
            outside, cost = cut_by_box(raters, rater_box, margin)
            stats["rater"][0] += outside / len(drawn)
            stats["rater"][1].append(cost)
    return {kind: {"outside_share": outside / max(1, foreground), "ged_of_cut_raters": float(np.mean(costs))}
            for kind, (outside, costs) in stats.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="lidc-crops64 root (default: the shared data)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--margins", default="0,2,3,5,8", help="comma-separated, in crop pixels")
    args = parser.parse_args(argv)
    try:
        margins = [float(m) for m in args.margins.split(",") if m.strip()]
    except ValueError:
        parser.error(f"--margins: not a list of numbers: {args.margins!r}")
    data = args.data or shared_data_dir() / "lidc-crops64"
    items = load_split(data / args.split)
    print(f"{args.split}: {len(items)} crops; raters' foreground outside the box + margin, and the raters' GED "
          "with it cut")
    print("| margin (px) | consensus box: outside | GED | each rater's box: outside | GED |")
    print("|---|---|---|---|---|")
    for margin in margins:
        got = measure(items, margin)
        c, r = got["consensus"], got["rater"]
        print(f"| {margin:g} | {100 * c['outside_share']:.2f} % | {c['ged_of_cut_raters']:.4f} "
              f"| {100 * r['outside_share']:.2f} % | {r['ged_of_cut_raters']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
