"""UP-SAM speed: 20 hypotheses for a 64 x 64 x D ROI from ONE forward pass plus low-rank sampling, against one forward
pass per hypothesis (the same hypotheses either way), in one process.

    .venv/bin/python benchmarks/bench_upsam.py [--checkpoint models/upsam.safetensors] [--samples 20]
                                               [--depths 16,32] [--repeats 5] [--threads 2] [--device cpu] [--json OUT]

Without the checkpoint the network is randomly initialised (the cost does not depend on the weights).  The ROI is a
real validation nodule stack of lidc-crops64 centred in D slices (edge slices repeated) when the shared data is there,
else a synthetic blob.  Each round runs the two procedures in alternating order so a busy machine slows them alike;
the table shows medians (and minima) and the ratio of medians.
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

from ambiview.models.base import select_device
from ambiview.models.upsam import UpSamEngine
from ambiview.models.upsam_net import UpSamNet
from ambiview.paths import models_dir, shared_data_dir


def roi(depth: int) -> tuple[np.ndarray, str]:
    split = shared_data_dir() / "lidc-crops64" / "validate"
    if split.is_dir():
        from ambiview.models.lidc import load_split, nodule_stacks
        from ambiview.models.upsam_data import centred_input

        stacks = [s for s in nodule_stacks(load_split(split), min_slices=1) if len(s.slice_indices) <= depth]
        stack = max(stacks, key=lambda s: len(s.slice_indices))
        return centred_input(stack.scans, depth)[0], f"{stack.nodule_id} ({len(stack.slice_indices)} slices)"
    zz, yy, xx = np.mgrid[:depth, :64, :64]
    blob = ((zz - depth / 2) / 3) ** 2 + ((yy - 32) / 8) ** 2 + ((xx - 30) / 8) ** 2 < 1
    image = np.where(blob, 1.0, -0.5) + np.random.default_rng(0).normal(0, 0.2, blob.shape)
    return image.astype(np.float32), "synthetic blob"


def build_engine(checkpoint: Path | None, device: torch.device) -> tuple[UpSamEngine, str]:
    if checkpoint is not None and checkpoint.is_file():
        return UpSamEngine.from_checkpoint(checkpoint, device), str(checkpoint)
    torch.manual_seed(0)
    return UpSamEngine(UpSamNet(), device=device), "random weights"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=models_dir() / "upsam.safetensors")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--depths", default="16,32", help="ROI depths in slices, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    engine, weights = build_engine(args.checkpoint, device)
    n = args.samples

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows = []
    for depth in (int(d) for d in args.depths.split(",")):
        image, source = roi(depth)

        def fast(image: np.ndarray = image) -> tuple[float, float]:
            """(seconds to the first hypothesis, seconds to all n)."""
            t = time.perf_counter()
            marks = []
            state = engine.prepare(image)
            engine.sample(state, None, n, seed=0, on_sample=lambda done, batch: marks.append(time.perf_counter()))
            sync()
            return marks[0] - t, time.perf_counter() - t

        def slow(image: np.ndarray = image) -> float:
            t = time.perf_counter()
            engine.sample_per_forward(image, n, seed=0)
            sync()
            return time.perf_counter() - t

        fast(), slow()  # warm-up (allocator, oneDNN kernels), not counted
        first_times, fast_times, slow_times = [], [], []
        for r in range(args.repeats):
            for which in (("fast", "slow") if r % 2 == 0 else ("slow", "fast")):
                if which == "fast":
                    first, total = fast()
                    first_times.append(first)
                    fast_times.append(total)
                else:
                    slow_times.append(slow())
        same = np.allclose(engine.sample(engine.prepare(image), None, n, 0), engine.sample_per_forward(image, n, 0),
                           atol=1e-4)
        row = {"depth": depth, "roi": f"64x64x{depth}", "source": source, "samples": n,
               "first_s": statistics.median(first_times), "one_pass_s": statistics.median(fast_times),
               "one_pass_min_s": min(fast_times), "per_sample_s": statistics.median(slow_times),
               "per_sample_min_s": min(slow_times), "same_hypotheses": bool(same)}
        row["ratio"] = row["per_sample_s"] / row["one_pass_s"]
        rows.append(row)
    info = {"device": str(device), "threads": torch.get_num_threads(), "weights": weights, "repeats": args.repeats,
            "torch": torch.__version__, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(info, indent=1))
    print(f"UP-SAM, {n} hypotheses, device {device}, {torch.get_num_threads()} threads, weights: {weights}")
    print(f"{'ROI':>10} | {'first s':>8} | {'one pass + sampling s':>22} | {'one pass per sample s':>22} | "
          "ratio | same")
    for r in rows:
        print(f"{r['roi']:>10} | {r['first_s']:8.3f} | {r['one_pass_s']:11.3f} (min {r['one_pass_min_s']:.3f}) | "
              f"{r['per_sample_s']:11.3f} (min {r['per_sample_min_s']:.3f}) | {r['ratio']:5.1f} | "
              f"{r['same_hypotheses']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
