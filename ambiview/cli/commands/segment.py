"""`ambiview-cli segment SERIES --model NAME (--box Z,Y0,X0,Y1,X1 | --point Z,Y,X[,+|-]) ... --out RESULT.npz`"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import CliError


def _numbers(text: str, count: int, what: str) -> list[float]:
    parts = text.split(",")
    try:
        values = [float(v) for v in parts[:count]]
    except ValueError:
        values = []
    if len(values) != count:
        raise CliError(f"{what} {text!r}: expected {count} comma-separated numbers")
    return values


def parse_point(text: str) -> tuple[float, float, float, bool]:
    """'Z,Y,X' or 'Z,Y,X,+' / 'Z,Y,X,-' (positive unless '-')."""
    z, y, x = _numbers(text, 3, "--point")
    sign = text.split(",")[3].strip() if text.count(",") >= 3 else "+"
    if sign not in ("+", "-"):
        raise CliError(f"--point {text!r}: the fourth field must be + or -")
    return z, y, x, sign == "+"


def register(subparsers) -> None:
    p = subparsers.add_parser("segment", help="draw hypotheses for a prompt on a series and save them (.npz)",
                              description="Z is the slice index in the sorted series (0 = lowest position along "
                                          "the slice normal); Y, X are row and column.")
    p.add_argument("series", type=Path, help="DICOM folder or file")
    p.add_argument("--model", required=True, help="engine name (see `ambiview-cli models`) or a .safetensors path")
    p.add_argument("--box", action="append", default=[], metavar="Z,Y0,X0,Y1,X1")
    p.add_argument("--point", action="append", default=[], metavar="Z,Y,X[,+|-]")
    p.add_argument("--samples", type=int, default=None, help="number of hypotheses (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--views", type=int, default=None,
                   help="Probabilistic SAM: share the hypotheses out over 1-4 mirrored views of the crop (one encoder "
                        "pass a view; default: 1)")
    p.add_argument("--series-uid", default=None, help="which series when the folder holds several")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default: CUDA when present)")
    p.add_argument("--out", type=Path, required=True, help="result file (.npz)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...imaging.loader import load_path
    from ...imaging.errors import LoadError
    from ...models.base import ModelError
    from ...models.mirror_views import set_views
    from ...models.registry import load_engine
    from ...session import Session
    from ...session.segment import PromptError, segment

    if not args.box and not args.point:
        raise CliError("give a prompt: --box Z,Y0,X0,Y1,X1 or --point Z,Y,X[,+|-]")
    try:
        volume, _ = load_path(args.series, series_uid=args.series_uid)
    except LoadError as exc:
        raise CliError(str(exc)) from exc
    session = Session()
    session.set_volume(volume)
    nz, ny, nx = volume.shape
    for text in args.point:
        z, y, x, positive = parse_point(text)
        _check_inside(text, z, [(y, ny), (x, nx)], nz)
        session.add_point(z, y, x, positive)
    for text in args.box:
        z, y0, x0, y1, x1 = _numbers(text, 5, "--box")
        _check_inside(text, z, [(y0, ny), (y1, ny), (x0, nx), (x1, nx)], nz)
        session.add_box(z, y0, x0, y1, x1)
    try:
        engine = load_engine(args.model, device=args.device)
        if args.views is not None:
            set_views(engine, args.views)
        n = args.samples or engine.default_samples
        if n < 1:
            raise CliError("--samples must be at least 1")
        start = time.perf_counter()
        result = segment(volume, session.prompts, engine, n, args.seed)
    except (ModelError, PromptError) as exc:
        raise CliError(str(exc)) from exc
    result.save(args.out)
    print(f"{result.n} hypotheses from {result.model_title} ({engine.digest}) in {time.perf_counter() - start:.1f} s "
          f"-> {args.out}", file=sys.stderr)
    return 0


def _check_inside(text: str, z: float, pairs, nz: int) -> None:
    if not 0 <= z < nz or any(not 0 <= v < n for v, n in pairs):
        raise CliError(f"prompt {text!r} lies outside the series")
