"""`ambiview-cli average --out FILE A B [...]`: the weight average of Probabilistic SAM checkpoints."""
from __future__ import annotations

import shlex
from pathlib import Path

from .. import CliError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "average", help="average the weights of Probabilistic SAM checkpoints fine-tuned from one start",
        description="Write the tensor-wise mean of two or more Probabilistic SAM checkpoints (a 'model soup'). "
                    "Average only checkpoints fine-tuned from one another or from one start: runs trained apart "
                    "use the latent each their own way, and their average loses the spread. The sampling settings "
                    "are the first checkpoint's.")
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="Probabilistic SAM .safetensors files")
    parser.add_argument("--out", required=True, help="checkpoint file to write (.safetensors)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ...models.base import ModelError
    from ...models.probsam_average import average_checkpoints

    command = shlex.join(["ambiview-cli", "average", "--out", str(args.out), *map(str, args.checkpoints)])
    try:
        digest = average_checkpoints([Path(p) for p in args.checkpoints], Path(args.out), command)
    except (ModelError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote {args.out} ({digest}): the mean of {len(args.checkpoints)} checkpoints")
    return 0
