"""How long the Segmentation Schrödinger Bridge takes to draw 16 hypotheses: 50 steps against the full schedule.

All hypotheses of a call run in one batch (one U-Net pass per step, two with classifier-free guidance).  The crop is a
real validation crop of lidc-crops64; timings are wall-clock seconds of `engine.sample` (prepare is a copy, < 1 ms).

    .venv/bin/python benchmarks/bench_ssb.py [--repeats 5] [--threads 2] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ambiview.models.base import ModelPrompts  # noqa: E402
from ambiview.models.lidc import list_names, read_item  # noqa: E402
from ambiview.models.registry import load_engine  # noqa: E402
from ambiview.paths import shared_data_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ssb", help="engine name or .safetensors path (default: ssb)")
    parser.add_argument("--data", type=Path, default=None, help="lidc-crops64 root (default: the shared data)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls at --steps (the median is reported)")
    parser.add_argument("--full-repeats", type=int, default=1, help="timed calls at the full schedule (0: skip it)")
    parser.add_argument("--guidance", type=float, default=None, help="override the checkpoint's guidance scale")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    split = (args.data or shared_data_dir() / "lidc-crops64") / "validate"
    item = read_item(split, list_names(split)[0])
    engine = load_engine(args.model, device=args.device)
    if args.guidance is not None:
        engine.guidance = args.guidance
    state = engine.prepare(item.scan)
    prompts = ModelPrompts(box=(16, 16, 47, 47))
    engine.sample(state, prompts, args.samples, seed=0, steps=5)  # warm-up (allocator, oneDNN kernels)

    def timed(steps: int) -> float:
        start = time.perf_counter()
        engine.sample(state, prompts, args.samples, seed=1, steps=steps)
        return time.perf_counter() - start

    load_before = os.getloadavg()[0]
    short = [timed(args.steps) for _ in range(args.repeats)]
    full = [timed(engine.max_steps) for _ in range(args.full_repeats)]
    load_after = os.getloadavg()[0]
    result = {
        "model": engine.name, "digest": engine.digest, "device": str(engine.device), "guidance": engine.guidance,
        "threads": torch.get_num_threads(), "samples": args.samples, "crop": item.name,
        "steps": args.steps, "seconds": [round(s, 3) for s in short], "median_s": round(statistics.median(short), 3),
        "min_s": round(min(short), 3),
        "full_steps": engine.max_steps, "full_seconds": [round(s, 3) for s in full],
        "full_median_s": round(statistics.median(full), 3) if full else None,
        "ratio_full_over_short": round(statistics.median(full) / statistics.median(short), 1) if full else None,
        "load_average_before_after": [round(load_before, 2), round(load_after, 2)],
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
    }
    print(f"| steps | hypotheses | median s | min s |\n|------:|-----------:|---------:|------:|\n"
          f"| {args.steps} | {args.samples} | {result['median_s']:.2f} | {result['min_s']:.2f} |")
    if full:
        print(f"| {engine.max_steps} (full) | {args.samples} | {result['full_median_s']:.2f} | {min(full):.2f} |\n")
        print(f"full schedule / {args.steps} steps = {result['ratio_full_over_short']}x")
    print(f"guidance {engine.guidance}, {result['threads']} threads, load average {load_before:.1f} -> {load_after:.1f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
