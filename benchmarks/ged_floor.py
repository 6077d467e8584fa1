"""What GED can a model reach on a multi-rater split?  Two model-free references.

    .venv/bin/python benchmarks/ged_floor.py --data ../shared/data/lidc-crops64 --split validate [--samples 16]

- **consensus repeated** (the `ref-consensus` row of `ambiview-cli eval`): a perfect deterministic model.  It is
  built from the very masks it is scored against, so it has seen the test annotations.
- **rater sampler**: the expected GED of a model that draws its hypotheses exactly as the raters draw their masks,
  independently of the scored raters: δ(1/n + 1/M) per crop (`ambiview.uncertainty.metrics.rater_sampler_ged`).
  (Its unbiasedness is checked by enumeration in `tests/test_uncertainty_metrics.py`.)

Also the raters' spread δ over distinct pairs (`rater_spread`), to compare with a model's `diversity` (distinct
pairs too; the `ref-raters` row's diversity is lower, its copies of one rater being pairs at distance 0), and GED's
last term E d(Y, Y′) (all pairs, self-pairs included), which with a model's GED and diversity gives its first term,
how far a hypothesis lies from a rater: E d(S, Y) = (GED + diversity (n − 1)/n + E d(Y, Y′)) / 2.

Mean over crops with a 95 % bootstrap interval.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ambiview.evaluation import resolve_split  # noqa: E402
from ambiview.models.lidc import load_split  # noqa: E402
from ambiview.uncertainty.bootstrap import bootstrap_ci  # noqa: E402
from ambiview.uncertainty.metrics import ged, iou_matrix, rater_sampler_ged, rater_spread  # noqa: E402


def floors(split_dir: Path, samples: int) -> dict:
    items = load_split(split_dir)
    consensus = [ged(item.gt[None], item.raters) for item in items]
    sampler = [rater_sampler_ged(item.raters, samples) for item in items]
    spread = [rater_spread(item.raters) for item in items]
    # GED's last term, E d(Y, Y′) over all pairs with self-pairs: what splits a model's GED into its two other terms
    rater_term = [float((1.0 - iou_matrix(item.raters, item.raters)).mean()) for item in items]

    def summary(values) -> dict:
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        mean, lo, hi = bootstrap_ci(values, seed=0)
        return {"mean": mean, "lo": lo, "hi": hi, "crops": int(values.size)}

    return {"split": str(split_dir), "samples": samples,
            "consensus_repeated": summary(consensus),
            "rater_sampler": summary(sampler),
            "rater_spread_distinct_pairs": summary(spread),
            "rater_term_all_pairs": summary(rater_term)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a split folder, or the lidc-crops64 root with --split")
    parser.add_argument("--split", default=None)
    parser.add_argument("--samples", type=int, default=16, help="hypotheses per crop of the imagined model")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    result = floors(resolve_split(args.data, args.split), args.samples)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['split']}: {result['consensus_repeated']['crops']} crops, n = {args.samples}")
    for key, label in (("consensus_repeated", "GED, consensus repeated (has seen the raters)"),
                       ("rater_sampler", f"GED, rater sampler, n = {args.samples} (expected)"),
                       ("rater_spread_distinct_pairs", "raters' spread δ (1 − IoU, distinct pairs)"),
                       ("rater_term_all_pairs", "E d(Y, Y′) (all pairs, GED's last term)")):
        s = result[key]
        print(f"  {label:<48} {s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]  ({s['crops']} crops)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
