"""Probabilistic SAM's sampling temperature: GED, HM-IoU and spread against the scale of the prior's sigma.

Runs the `ambiview-cli eval` protocol (ambiview.evaluation) once per temperature on the same crops with the same
seeds, so the rows differ only in the temperature (hypothesis i draws z = mu + T * sigma * eps_i with the same eps_i).
Choose the temperature on `train`, report on `validate`.  `--every K` keeps every K-th crop (name order).

    .venv/bin/python benchmarks/probsam_temperature.py --split train --every 5 --temperatures 1,1.15,1.3,1.5 \
        [--box-margins=-1,5] [--draws iid,sobol] [--box-jitters 0,1,1.5] \
        [--checkpoint models/probsam-litemedsam.safetensors] [--json OUT] [--save OUT.safetensors]

`--draws` also sweeps how the hypotheses' eps are drawn (ProbSamConfig.draws: iid, or a scrambled Sobol sequence);
the same seeds in both, so an iid row equals the checkpoint's own at that temperature.
`--box-jitters` also sweeps ProbSamConfig.box_jitter (crop pixels: hypothesis i reads the box with each edge moved by
jitter * eps_i); 0 reads the box as given.
`--save` writes a copy of the checkpoint whose stored temperature (and draws, box jitter) is the sweep's lowest-GED
row (tensors unchanged; the metadata `temperature_chosen` records the split and the GEDs); it keeps the checkpoint's own box margin.

Compare the diversity (distinct pairs) with the raters' spread δ printed by `benchmarks/ged_floor.py`.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ambiview.evaluation import EvalOptions, evaluate, text_row  # noqa: E402
from ambiview.models.base import ModelError  # noqa: E402
from ambiview.models.probsam import DRAWS, ProbSamEngine, checked_box_jitter, save_with_temperature  # noqa: E402
from ambiview.paths import shared_data_dir  # noqa: E402


def sweep(engine: ProbSamEngine, options: EvalOptions, temperatures: list[float],
          box_margins: list[float] | None = None, log=print, draws: list[str] | None = None,
          box_jitters: list[float] | None = None) -> list[dict]:
    """One evaluation per (draws, box margin, box jitter, temperature); `box_margins` / `draws` / `box_jitters`
    None keep the engine's."""
    rows = []
    grid = itertools.product(draws if draws is not None else [engine.draws],
                             box_margins if box_margins is not None else [engine.box_margin],
                             box_jitters if box_jitters is not None else [engine.box_jitter], temperatures)
    for kind, margin, jitter, temperature in grid:
        engine.draws, engine.box_margin, engine.box_jitter, engine.temperature = kind, margin, jitter, temperature
        report = evaluate(options, engine=engine)
        rows.append({"temperature": temperature, "box_margin": margin, "draws": kind, "box_jitter": jitter,
                     "aggregate": report.aggregate, "seconds": report.protocol["seconds"],
                     "crops": report.protocol["n_items"]})
        log(f"T {temperature:4.2f}, box margin {margin:g}, box jitter {jitter:g}, {kind} draws: {text_row(report)}  "
            f"({report.protocol['seconds']:.0f} s)")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "probsam-litemedsam.safetensors")
    parser.add_argument("--data", type=Path, default=None, help="lidc-crops64 root (default: the shared data)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--temperatures", default="1,1.15,1.3,1.5", help="comma-separated, each >= 0")
    parser.add_argument("--box-margins", default=None,
                        help="comma-separated box bounds in crop pixels (negative: none; default: the checkpoint's)")
    parser.add_argument("--draws", default=None,
                        help=f"comma-separated ways of drawing eps, of {', '.join(DRAWS)} (default: the checkpoint's)")
    parser.add_argument("--box-jitters", default=None,
                        help="comma-separated box jitters in crop pixels, each >= 0 (default: the checkpoint's)")
    parser.add_argument("--every", type=int, default=1, help="keep every K-th crop (name order)")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--save", type=Path, default=None, help="copy of the checkpoint at the lowest-GED temperature")
    args = parser.parse_args(argv)
    try:
        temperatures = [float(t) for t in args.temperatures.split(",") if t.strip()]
    except ValueError:
        parser.error(f"--temperatures: not a list of numbers: {args.temperatures!r}")
    try:
        margins = [float(m) for m in args.box_margins.split(",") if m.strip()] if args.box_margins else None
    except ValueError:
        parser.error(f"--box-margins: not a list of numbers: {args.box_margins!r}")
    draws = [d.strip() for d in args.draws.split(",") if d.strip()] if args.draws else None
    try:
        jitters = ([checked_box_jitter(j) for j in args.box_jitters.split(",") if j.strip()]
                   if args.box_jitters else None)
    except ModelError:  # checked_box_jitter turns a non-number into one too
        parser.error(f"--box-jitters: give numbers >= 0, got {args.box_jitters!r}")
    if draws is not None and (not draws or set(draws) - set(DRAWS)):
        parser.error(f"--draws: give one or more of {', '.join(DRAWS)}, got {args.draws!r}")
    if not temperatures or min(temperatures) < 0:
        parser.error("--temperatures: give one or more numbers >= 0 (0: every hypothesis is the prior's mean)")
    if args.save and margins is not None and len(margins) > 1:
        parser.error("--save picks a temperature: give one box margin (or none)")
    data = args.data or shared_data_dir() / "lidc-crops64"
    engine = ProbSamEngine.from_checkpoint(args.checkpoint, device=args.device)
    print(f"{args.checkpoint.name} ({engine.digest}, stored temperature {engine.temperature}, {engine.draws} draws, "
          f"box margin {engine.box_margin:g}, box jitter {engine.box_jitter:g}), "
          f"{args.split} every {args.every}, {args.samples} samples, seed {args.seed}")
    options = EvalOptions(model=engine.name, data=data, split=args.split, samples=args.samples, seed=args.seed,
                          device=args.device, every=args.every)
    rows = sweep(engine, options, temperatures, margins, draws=draws, box_jitters=jitters)
    if args.json:
        args.json.write_text(json.dumps({"checkpoint": str(args.checkpoint), "digest": engine.digest,
                                         "split": args.split, "every": args.every, "rows": rows}, indent=2))
    if args.save:
        best = min(rows, key=lambda row: row["aggregate"]["ged"]["mean"])
        if best["temperature"] <= 0:
            print("not saved: temperature 0 (one mask repeated) had the lowest GED", file=sys.stderr)
            return 1
        geds = ", ".join(f"T {row['temperature']:g} {row['draws']} jitter {row['box_jitter']:g}: "
                         f"{row['aggregate']['ged']['mean']:.4f}" for row in rows)
        note = (f"lowest mean GED on {args.split} (every {args.every}, {best['crops']} crops, {args.samples} samples, "
                f"seed {args.seed}) by benchmarks/probsam_temperature.py: {geds}")
        save_with_temperature(args.checkpoint, args.save, best["temperature"], note, draws=best["draws"],
                              box_jitter=best["box_jitter"])
        print(f"wrote {args.save} with temperature {best['temperature']:g}, {best['draws']} draws, "
              f"box jitter {best['box_jitter']:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
