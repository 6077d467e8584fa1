"""`ambiview-cli summary RESULT.npz [--json]`: what the views show, as numbers."""
from __future__ import annotations

import json

from .. import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser("summary", help="interpretations, consensus, STAPLE, diversity and size spread of a result")
    p.add_argument("result", help="a result file written by `ambiview-cli segment` or the app")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--threshold", type=float, default=0.5, help="probability above which a hypothesis covers a pixel")
    p.set_defaults(func=run)


def result_spacing(result) -> tuple[float, ...]:
    """Pixel spacing of the result's grid: (dy, dx) for 2D, (dz, dy, dx) for 3D, in mm."""
    g = result.roi_geometry
    return g.spacing if result.is_3d else g.pixel_spacing


def run(args) -> int:
    from ...session.result import ResultFileError, SegmentationResult
    from ...uncertainty.summary import summarize

    try:
        result = SegmentationResult.load(args.result)
    except ResultFileError as exc:
        raise CliError(str(exc)) from exc
    summary = summarize(result.probs, result_spacing(result), threshold=args.threshold)
    summary = {"result": str(args.result), "model": result.model, "digest": result.digest, "seed": result.seed,
               **summary}
    if args.json:
        print(json.dumps(summary, indent=2, allow_nan=False))
        return 0
    unit = summary.get("size_unit", "")
    print(f"{result.n} hypotheses from {result.model_title or result.model} ({result.digest}), seed {result.seed}")
    print(f"interpretations: {summary['modes_text']}")
    for item in summary["consensus"]:
        print(f"consensus >= {item['level']:.0%} ({item['required_count']} of {result.n}): {item['size']:.1f} {unit}")
    if summary.get("staple"):
        print(f"STAPLE: {summary['staple']['size']:.1f} {unit}")
    sizes = summary["sizes"]
    print(f"size: mean {sizes['mean']:.1f} {unit} (sd {sizes['sd']:.1f}, {sizes['min']:.1f}-{sizes['max']:.1f})")
    print(f"diversity (mean pairwise 1-IoU): {summary['diversity']:.3f}")
    return 0
