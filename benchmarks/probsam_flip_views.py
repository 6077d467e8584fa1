"""Probabilistic SAM with flipped views: the n hypotheses shared out over V flips of the crop, at several temperatures.

Hypothesis i is decoded on view i % V (identity, left-right, up-down, both), from that view's own encoder embedding
and prior, with the same eps_i as the unflipped model (the checkpoint's draws), then flipped back; the box prompt
is flipped with the crop (the engine's `views`, `ambiview.models.mirror_views`; `ambiview-cli eval --views V`).
V = 1 is the default.  Each view costs one more encoder pass, which is what this measures against: GED and the
other protocol metrics of `ambiview-cli eval` (consensus box, same per-crop seeds).
With `--flip embedding` the views cost no encoder pass: each flips the one embedding of the crop in space (and the
crop its prior sees) instead, and the decoder's positional encoding stays as it is.

    .venv/bin/python benchmarks/probsam_flip_views.py --split train --every 5 --views 1,4 --temperatures 1.3,1.6,2 \
        [--checkpoint models/probsam-litemedsam.safetensors] [--json-prefix OUT]

`--json-prefix OUT` writes OUT-V4-T1.6.json and so on in `ambiview-cli eval`'s JSON layout, for
`benchmarks/paired_difference.py`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ambiview.evaluation import (METRICS, EvalOptions, EvalReport, aggregate, item_metrics, item_rng,  # noqa: E402
                                 prompt_box, resolve_split)
from ambiview.models.base import ModelPrompts  # noqa: E402
from ambiview.models.lidc import load_split  # noqa: E402
from ambiview.models.mirror_views import FLIPS, MAX_VIEWS, flip, flip_prompts  # noqa: E402
from ambiview.models.probsam import ProbSamEngine, ProbSamState  # noqa: E402
from ambiview.paths import shared_data_dir  # noqa: E402


def flipped_state(state: ProbSamState, view: int) -> ProbSamState:
    """The state of view `view` without an encoder pass: the embedding and the crop flipped in space."""
    up_down, left_right = FLIPS[view]
    dims = ([-2] if up_down else []) + ([-1] if left_right else [])
    if not dims:
        return state
    return ProbSamState(torch.flip(state.embedding, dims), torch.flip(state.crop, dims), state.shape, state.key)


def flipped_embedding_hypotheses(engine: ProbSamEngine, state: ProbSamState, box, n: int, seed: int,
                                 views: int) -> np.ndarray:
    """(n, H, W): hypothesis i on view i % views of the one embedding, flipped back (the engine's own `views`
    does this with an encoder pass a view)."""
    out = np.zeros((n,) + state.shape, np.float32)
    for view in range(views):
        view_state = flipped_state(state, view)
        prompts = flip_prompts(ModelPrompts(box=box), state.shape, view)
        picks = list(range(view, n, views))
        with torch.inference_mode():
            z = engine.latents(view_state, prompts, n, seed)[picks]
        out[picks] = flip(engine.decode_latents(view_state, prompts, z), view)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "probsam-litemedsam.safetensors")
    parser.add_argument("--data", type=Path, default=None, help="lidc-crops64 root (default: the shared data)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--every", type=int, default=1, help="every K-th crop in name order")
    parser.add_argument("--views", default="1,4", help="comma-separated, each 1..4")
    parser.add_argument("--temperatures", default=None, help="comma-separated (default: the checkpoint's)")
    parser.add_argument("--flip", choices=("input", "embedding"), default="input",
                        help="flip the crop before the encoder (one pass a view), or flip its embedding (one pass)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-prefix", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        views = [int(v) for v in args.views.split(",")]
        temps = [float(t) for t in args.temperatures.split(",")] if args.temperatures else None
    except ValueError:
        parser.error("--views and --temperatures take comma-separated numbers")
    if any(not 1 <= v <= MAX_VIEWS for v in views):
        parser.error(f"--views: each between 1 and {MAX_VIEWS}")
    data = args.data or shared_data_dir() / "lidc-crops64"
    split_dir = resolve_split(data, args.split)
    items = load_split(split_dir)[::max(1, args.every)]
    engine = ProbSamEngine.from_checkpoint(args.checkpoint, device="cpu")
    temps = temps or [engine.temperature]
    rows: dict[tuple[int, float], list[dict]] = {}
    start = time.perf_counter()
    for item in items:
        rng = item_rng(args.seed, item.name)
        seed = int(rng.integers(2**31 - 1))  # as ambiview.evaluation draws it, so V = 1 equals `eval`
        box, _ = prompt_box(item, "gt", rng)
        state = engine.prepare(item.scan)
        for temperature in temps:
            engine.temperature = temperature
            for v in views:
                if args.flip == "input":  # the engine's own views: one encoder pass a view (cached after the first)
                    engine.views = v
                    probs = engine.sample(state, ModelPrompts(box=box), args.samples, seed)
                else:
                    probs = flipped_embedding_hypotheses(engine, state, box, args.samples, seed, v)
                rows.setdefault((v, temperature), []).append({"name": item.name, **item_metrics(probs, item.raters)})
    print(f"{len(items)} crops of {split_dir}, {time.perf_counter() - start:.0f} s")
    for (v, temperature), items_rows in sorted(rows.items()):
        agg = aggregate(items_rows, n_boot=EvalOptions.n_boot, seed=args.seed)
        print(f"views {v}, T {temperature:g}: " + "  ".join(
            f"{m} {agg[m]['mean']:.4f}" for m in METRICS)
            + f"  (GED [{agg['ged']['lo']:.3f}, {agg['ged']['hi']:.3f}])")
        if args.json_prefix:
            path = Path(f"{args.json_prefix}-V{v}-T{temperature:g}.json")
            protocol = {"model": str(args.checkpoint), "digest": engine.digest, "views": v, "flip": args.flip,
                        "temperature": temperature, "samples": args.samples, "seed": args.seed, "prompt": "gt",
                        "data": str(split_dir), "n_items": len(items_rows), "every": args.every,
                        "bootstrap": EvalOptions.n_boot, "threshold": 0.5}
            path.write_text(json.dumps(EvalReport(protocol, agg, items_rows).to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
