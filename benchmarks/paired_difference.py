"""Is one engine better than another on the same crops?  The mean per-crop difference of a metric with a paired
95 % bootstrap interval, from two `ambiview-cli eval --json` files (one run each, or a multi-model file and a name).

    .venv/bin/python benchmarks/paired_difference.py A.json B.json [--model-a NAME] [--model-b NAME] [--metric ged]

Crops are matched by name; the runs must share the protocol (samples, seed, prompt), which the script checks.  A
difference whose interval excludes 0 is one the split can resolve; an unpaired comparison of the two means'
intervals is weaker, because the hard crops are hard for both engines.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ambiview.uncertainty.bootstrap import bootstrap_ci  # noqa: E402

PROTOCOL_KEYS = ("samples", "seed", "prompt", "n_items", "threshold", "every")
PROTOCOL_DEFAULTS = {"every": 1}  # runs written before the key existed


def load_run(path: Path, model: str | None) -> dict:
    """One run of an eval JSON: the only one, or the one whose model name (or checkpoint) is `model`."""
    data = json.loads(path.read_text())
    runs = data["runs"] if "runs" in data else [data]
    if model is None:
        if len(runs) != 1:
            names = ", ".join(r["protocol"]["model"] for r in runs)
            raise SystemExit(f"{path}: holds {len(runs)} runs ({names}); name one with --model-a/--model-b")
        return runs[0]
    for run in runs:
        if model in (run["protocol"]["model"], run["protocol"].get("checkpoint")):
            return run
    raise SystemExit(f"{path}: no run of model {model!r}")


def paired_difference(a: dict, b: dict, metric: str, n_boot: int = 10_000) -> dict:
    """Mean of (a − b) over the crops both runs scored, with its bootstrap interval and the crops' count."""
    for key in PROTOCOL_KEYS:
        value_a, value_b = (run["protocol"].get(key, PROTOCOL_DEFAULTS.get(key)) for run in (a, b))
        if value_a != value_b:
            raise SystemExit(f"the runs differ in {key}: {value_a!r} vs {value_b!r}")
    values_b = {item["name"]: item[metric] for item in b["items"]}
    diffs = [item[metric] - values_b[item["name"]] for item in a["items"] if item["name"] in values_b]
    mean, lo, hi = bootstrap_ci(np.array(diffs, dtype=float), n_boot=n_boot, seed=0)
    return {"metric": metric, "crops": len(diffs), "mean": mean, "lo": lo, "hi": hi}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--model-a", default=None)
    parser.add_argument("--model-b", default=None)
    parser.add_argument("--metric", default="ged")
    parser.add_argument("--bootstrap", type=int, default=10_000)
    args = parser.parse_args(argv)
    a, b = load_run(args.a, args.model_a), load_run(args.b, args.model_b)
    result = paired_difference(a, b, args.metric, args.bootstrap)
    print(f"{a['protocol']['model']} − {b['protocol']['model']}, {result['metric']} on {result['crops']} crops: "
          f"{result['mean']:+.4f} [{result['lo']:+.4f}, {result['hi']:+.4f}] (paired 95 % bootstrap)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
