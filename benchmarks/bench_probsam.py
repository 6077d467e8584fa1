"""Probabilistic SAM speed: embedding, prompt -> first hypothesis, prompt -> 16 hypotheses, against the official
procedure (the whole model, encoder included, once per sample), all in one process.

    .venv/bin/python benchmarks/bench_probsam.py [--checkpoint models/probsam-litemedsam.safetensors]
                                                 [--samples 16] [--repeats 3] [--device cpu] [--views 1]
                                                 [--json OUT]

Without a checkpoint the new networks are randomly initialised (the cost does not depend on their weights).  The crop
is a real validation crop when the shared data is there, else a synthetic blob.  Each round runs the procedures in a
rotating order so a busy machine slows them alike; the table shows medians and the ratios of medians.
`--views V` times our procedures with V mirrored views: the disk cache is off, so every one of them, "cached" ones
included, pays the V - 1 further views' encoder passes (the first hypothesis waits for none of them).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ambiview.models.base import ModelPrompts, select_device
from ambiview.models.mirror_views import checked_views
from ambiview.models.probsam import ProbSam, ProbSamEngine
from ambiview.models.sam_backbone import load_backbone
from ambiview.paths import shared_data_dir


def crop_and_box() -> tuple[np.ndarray, tuple[float, float, float, float], str]:
    split = shared_data_dir() / "lidc-crops64" / "validate"
    if split.is_dir():
        from ambiview.models.lidc import load_split
        from ambiview.models.probsam import box_of_mask

        item = load_split(split, limit=1)[0]
        return item.scan, tuple(float(v) for v in box_of_mask(item.gt)), f"LIDC validate {item.name}"
    yy, xx = np.mgrid[:64, :64]
    crop = np.where((yy - 32) ** 2 + (xx - 30) ** 2 < 80, 1.0, -0.5).astype(np.float32)
    crop += np.random.default_rng(0).normal(0, 0.2, crop.shape).astype(np.float32)
    return crop, (22.0, 20.0, 42.0, 40.0), "synthetic blob"


def build_engine(checkpoint: Path | None, device: torch.device) -> ProbSamEngine:
    if checkpoint is not None:
        engine = ProbSamEngine.from_checkpoint(checkpoint, device=device)
    else:
        torch.manual_seed(0)
        engine = ProbSamEngine(model=ProbSam(load_backbone("litemedsam")), device=device)
    engine.cache = None  # measure the encoder itself, not the disk cache
    return engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--views", type=int, default=1, help="mirrored views for our procedures (1-4)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    device = select_device(args.device)
    engine = build_engine(args.checkpoint, device)
    engine.views = checked_views(args.views)  # the official procedure draws one sample a pass: one view
    crop, box, source = crop_and_box()
    prompts = ModelPrompts(box=box)
    n = args.samples

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def embedding() -> float:
        t = time.perf_counter()
        engine.prepare(crop)
        sync()
        return time.perf_counter() - t

    state = engine.prepare(crop)

    def first_cached() -> float:
        """Prompt -> first hypothesis with the embedding cached (the time until on_sample first fires)."""
        t = time.perf_counter()
        first: list[float] = []
        engine.sample(state, prompts, n, seed=0,
                      on_sample=lambda done, b: first.append(time.perf_counter() - t) if not first else None)
        return first[0]

    def all_cached() -> float:
        t = time.perf_counter()
        engine.sample(state, prompts, n, seed=0)
        sync()
        return time.perf_counter() - t

    def all_uncached() -> float:
        """Prompt -> n hypotheses on a new crop: one embedding, then the batched decoder."""
        t = time.perf_counter()
        engine.sample(engine.prepare(crop), prompts, n, seed=0)
        sync()
        return time.perf_counter() - t

    def official() -> float:
        """The official code's procedure: the whole model, encoder included, once per sample."""
        t = time.perf_counter()
        for k in range(n):
            engine.sample(engine.prepare(crop), prompts, 1, seed=k)
        sync()
        return time.perf_counter() - t

    procedures = {"embedding": embedding, "first_hypothesis_cached": first_cached,
                  f"{n}_hypotheses_cached": all_cached, f"{n}_hypotheses_with_embedding": all_uncached,
                  f"official_{n}_forward_passes": official}
    times: dict[str, list[float]] = {k: [] for k in procedures}
    first_cached(), all_cached()  # warm-up
    names = list(procedures)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(procedures[name]())
    med = {k: statistics.median(v) for k, v in times.items()}
    ours = med[f"{n}_hypotheses_with_embedding"]
    report = {
        "device": str(device), "torch_threads": torch.get_num_threads(), "crop": source, "samples": n,
        "views": engine.views,
        "checkpoint": str(args.checkpoint) if args.checkpoint else "random new networks",
        "median_s": med, "min_s": {k: min(v) for k, v in times.items()},
        "speedup_vs_official": med[f"official_{n}_forward_passes"] / ours,
        "first_hypothesis_ms": 1000 * med["first_hypothesis_cached"],
    }
    print(f"Probabilistic SAM on {device} ({source}), {n} hypotheses, {engine.views} view(s), {args.repeats} rounds")
    print(f"{'procedure':34s} {'median s':>10s} {'min s':>10s}")
    for k in names:
        print(f"{k:34s} {med[k]:10.4f} {report['min_s'][k]:10.4f}")
    print(f"official / ours = {report['speedup_vs_official']:.1f}x;  prompt -> first hypothesis (embedding cached) "
          f"= {report['first_hypothesis_ms']:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
