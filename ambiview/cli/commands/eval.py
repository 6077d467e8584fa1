"""`ambiview-cli eval --model NAME[,NAME...] --data DIR`: the multi-rater evaluation protocol (ambiview.evaluation).

One model prints one readable line; several models (or several prompt modes, or --table) also print a markdown table
to paste into a model card.  --json writes the per-crop values, the aggregates and the protocol: one report object for
a single run, {"runs": [report, ...]} for several.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate models on multi-rater crops (GED, HM-IoU, soft Dice, NCC, CI, diversity)",
        description="Evaluate models on a folder laid out like a lidc-crops64 split (scans/, masks/annots/, "
                    "masks/GT/) or on the lidc-crops64 root with --split.  Model names: installed engines "
                    "(see `ambiview-cli models`), a .safetensors path, or the references ref-consensus / ref-raters.")
    p.add_argument("--model", required=True, help="model name, or a comma-separated list")
    p.add_argument("--data", required=True, type=Path, help="a split folder, or the lidc-crops64 root with --split")
    p.add_argument("--split", default=None, help="split folder inside --data (e.g. validate)")
    p.add_argument("--samples", type=int, default=16, help="hypotheses per crop (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt", default="gt",
                   help="box prompt from the consensus (gt, default) or one random rater (rater); comma list for both")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    p.add_argument("--limit", type=int, default=None, help="only the first N crops (name order)")
    p.add_argument("--every", type=int, default=1, help="only every K-th crop (name order; before --limit)")
    p.add_argument("--views", type=int, default=None,
                   help="Probabilistic SAM: share the hypotheses out over 1-4 mirrored views of each crop (one encoder "
                        "pass a view; default: 1)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write all values and the protocol here")
    p.add_argument("--table", action="store_true", help="print a markdown table even for a single run")
    p.set_defaults(func=run)


def _names(text: str, what: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise CliError(f"--{what}: nothing given")
    return names


def _progress(label: str):
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{label}: {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show


def run(args) -> int:
    from ...evaluation import (
        PROMPT_MODES,
        REFERENCES,
        EvalOptions,
        EvaluationError,
        evaluate,
        finite_or_none,
        load_engine,
        markdown_table,
        text_row,
    )
    from ...models.base import ModelError, write_bytes_atomic

    models = _names(args.model, "model")
    prompts = _names(args.prompt, "prompt")
    for mode in prompts:
        if mode not in PROMPT_MODES:
            raise CliError(f"--prompt: unknown mode {mode!r} (use {', '.join(PROMPT_MODES)})")
    reports = []
    try:
        for model in models:
            engine = None
            # References ignore the prompt: one row each.
            for mode in prompts[:1] if model in REFERENCES else prompts:
                options = EvalOptions(model=model, data=args.data, split=args.split, samples=args.samples,
                                      seed=args.seed, prompt=mode, device=args.device, limit=args.limit,
                                      every=args.every, n_boot=args.bootstrap, views=args.views)
                if engine is None and model not in REFERENCES:
                    engine = load_engine(model, args.device)
                report = evaluate(options, progress=_progress(f"{model} ({mode})"), engine=engine)
                print(text_row(report), flush=True)
                reports.append(report)
    except (EvaluationError, ModelError) as exc:
        raise CliError(str(exc)) from exc
    if len(reports) > 1 or args.table:
        print()
        print(markdown_table(reports))
    if args.json is not None:
        payload = reports[0].to_dict() if len(reports) == 1 else {"runs": [r.to_dict() for r in reports]}
        try:
            write_bytes_atomic(args.json, json.dumps(finite_or_none(payload), indent=1).encode())
        except OSError as exc:
            raise CliError(f"{args.json}: cannot write ({exc.strerror or exc})") from exc
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
