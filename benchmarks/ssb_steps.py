"""The price of quality for the Segmentation Schrödinger Bridge: GED and HM-IoU against the number of sampling steps.

Runs the `ambiview-cli eval` protocol (ambiview.evaluation: per-crop seed and box prompt, hypotheses thresholded at
0.5 and compared with every rater, mean with a 95 % bootstrap interval) once per step count, on the same crops with
the same seeds, so the rows differ only in the steps.  `--every K` keeps every K-th crop of the split (name order)
to make the full schedule affordable on a CPU.

    .venv/bin/python benchmarks/ssb_steps.py --steps 10,25,50,100,1000 --every 4 [--guidance W] [--eta E]
                                             [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ambiview.evaluation import aggregate, finite_or_none, item_metrics, item_rng, prompt_box  # noqa: E402
from ambiview.models.base import ModelPrompts  # noqa: E402
from ambiview.models.lidc import check_split, load_split  # noqa: E402
from ambiview.models.registry import load_engine  # noqa: E402
from ambiview.paths import shared_data_dir  # noqa: E402


def sweep(engine, items, steps_list: list[int], samples: int, seed: int, n_boot: int, log=print) -> list[dict]:
    """One aggregate (the eval protocol's) per step count, on the same crops and seeds."""
    rows = []
    for steps in steps_list:
        started = time.perf_counter()
        per_item = []
        for item in items:
            rng = item_rng(seed, item.name)
            box, _ = prompt_box(item, "gt", rng)
            item_seed = int(rng.integers(2**31 - 1))
            probs = engine.sample(engine.prepare(item.scan), ModelPrompts(box=box), samples, item_seed, steps=steps)
            per_item.append(item_metrics(probs, item.raters))
        agg = aggregate(per_item, n_boot, seed)
        row = {"steps": steps, "seconds": round(time.perf_counter() - started, 1), "aggregate": agg}
        rows.append(row)
        log(f"steps {steps:5d}: GED {agg['ged']['mean']:.4f} [{agg['ged']['lo']:.4f}, {agg['ged']['hi']:.4f}]  "
            f"HM-IoU {agg['hm_iou']['mean']:.4f} [{agg['hm_iou']['lo']:.4f}, {agg['hm_iou']['hi']:.4f}]  "
            f"diversity {agg['diversity']['mean']:.4f}  ({row['seconds']} s)")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ssb")
    parser.add_argument("--data", type=Path, default=None, help="lidc-crops64 root (default: the shared data)")
    parser.add_argument("--split", default="validate")
    parser.add_argument("--steps", default="10,25,50,100,1000", help="comma-separated step counts")
    parser.add_argument("--every", type=int, default=1, help="keep every K-th crop (name order)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guidance", type=float, default=None, help="override the checkpoint's guidance scale")
    parser.add_argument("--eta", type=float, default=None,
                        help="override the sampler's eta (share of fresh posterior noise per step; 1 = I²SB)")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    engine = load_engine(args.model, device=args.device)
    if args.guidance is not None:
        engine.guidance = args.guidance
    if args.eta is not None:
        engine.eta = args.eta
    steps_list = [int(s) for s in args.steps.split(",")]
    split = check_split((args.data or shared_data_dir() / "lidc-crops64") / args.split)
    items = load_split(split)[::max(1, args.every)]
    print(f"{engine.name} ({engine.digest}), guidance {engine.guidance}, eta {engine.eta}, {len(items)} crops of {split}, "
          f"{args.samples} hypotheses each", flush=True)
    rows = sweep(engine, items, steps_list, args.samples, args.seed, args.bootstrap,
                 log=lambda line: print(line, flush=True))
    print("\n| steps | GED ↓ | HM-IoU ↑ | diversity | s (all crops) |\n|---:|---|---|---:|---:|")
    for row in rows:
        g, h = row["aggregate"]["ged"], row["aggregate"]["hm_iou"]
        print(f"| {row['steps']} | {g['mean']:.3f} [{g['lo']:.3f}, {g['hi']:.3f}] | {h['mean']:.3f} "
              f"[{h['lo']:.3f}, {h['hi']:.3f}] | {row['aggregate']['diversity']['mean']:.3f} | {row['seconds']} |")
    if args.json:
        payload = {"model": engine.name, "digest": engine.digest, "guidance": engine.guidance, "eta": engine.eta,
                   "crops": len(items),
                   "every": args.every, "split": str(split), "samples": args.samples, "seed": args.seed, "rows": rows}
        args.json.write_text(json.dumps(finite_or_none(payload), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
