"""`ambiview-cli train NAME --data DIR --out FILE`: train a model family on a lidc-crops64-like folder."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

from .. import CliError


def register(subparsers) -> None:
    from ...models.trainers import TRAINERS

    parser = subparsers.add_parser(
        "train", help="train a model on multi-rater crops and write a safetensors checkpoint",
        description="Train NAME on DIR/train, select on DIR/validate, write FILE (.safetensors).")
    parser.add_argument("name", metavar="NAME", help=f"model family: {', '.join(sorted(TRAINERS))}")
    parser.add_argument("--data", required=True, help="folder with train/ and validate/ laid out like lidc-crops64")
    parser.add_argument("--out", required=True, help="checkpoint file to write (.safetensors)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the trainer's, 10 for probsam)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    parser.add_argument("--backbone", default=None,
                        help="litemedsam (default, bundled) or sam_vit_b:/path/to/weights.pth (also vit_l, vit_h)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N crops of each split (smoke runs)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="trainer-specific setting, e.g. point_prob=0 or val_every=1 (repeatable)")
    parser.add_argument("--init", default=None, metavar="FILE",
                        help="start from this checkpoint's settings and weights (fine-tuning; probsam only)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the training summary as JSON")
    parser.set_defaults(func=run)


def _command_line(args) -> str:
    parts = ["ambiview-cli", "train", args.name, "--data", str(args.data), "--out", str(args.out)]
    for flag in ("epochs", "seed", "device", "backbone", "limit", "init"):
        value = getattr(args, flag)
        if value is not None:
            parts += [f"--{flag}", str(value)]
    for option in args.option:
        parts += ["--option", option]
    return shlex.join(parts)


def run(args) -> int:
    from ...models.base import ModelError
    from ...models.trainers import STARTS_FROM_CHECKPOINT, TRAINERS, TrainRequest, get_trainer

    if args.name not in TRAINERS:
        raise CliError(f"unknown model {args.name!r} (trainable: {', '.join(sorted(TRAINERS))})")
    if args.limit is not None and args.limit < 1:
        raise CliError("--limit must be at least 1")
    if args.epochs is not None and args.epochs < 1:
        raise CliError("--epochs must be at least 1")
    if args.init is not None and args.name not in STARTS_FROM_CHECKPOINT:
        raise CliError(f"--init: {args.name} training always starts from scratch "
                       f"(--init works for {', '.join(sorted(STARTS_FROM_CHECKPOINT))})")
    options = {}
    for option in args.option:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise CliError(f"--option {option!r}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    request = TrainRequest(data=args.data, out=args.out, epochs=args.epochs, seed=args.seed, device=args.device,
                           backbone=args.backbone, limit=args.limit, command=_command_line(args), options=options,
                           init=Path(args.init) if args.init is not None else None,
                           log=lambda line: print(line, flush=True))
    try:
        summary = get_trainer(args.name)(request)
    except (ModelError, FileNotFoundError, PermissionError) as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        from ...models.base import write_bytes_atomic

        write_bytes_atomic(Path(args.json), json.dumps(summary, indent=2).encode())
    return 0
