"""`ambiview-cli export RESULT.npz --series SERIES (--hypothesis K | --consensus LEVEL) [outputs]`.

Takes one hypothesis (K counts from 1) or the consensus at an agreement level (0 < LEVEL <= 1) of a segmentation
result, pastes it onto the series' grid and writes it as DICOM RTSTRUCT (--rtstruct), DICOM SEG (--seg), NIfTI
(--nifti); the mean probability map of all hypotheses as a FRACTIONAL SEG (--seg-fractional) or NIfTI
(--nifti-probability).  Each OUT is a file name, or a folder (existing, or a path without extension) that gets a
default name.  Without any output option an RTSTRUCT goes to an export folder under the user data folder.  Nothing
is ever written into the source DICOM folder, and every file appears complete or not at all.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import CliError


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a hypothesis or consensus as RTSTRUCT, SEG or NIfTI",
                                   description=__doc__.split("\n\n")[1])
    parser.add_argument("result", type=Path, help="result file written by `ambiview-cli segment` (.npz)")
    parser.add_argument("--series", type=Path, required=True, help="DICOM folder of the series the result is on")
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("--hypothesis", type=int, metavar="K", help="export hypothesis K (1 = first)")
    choice.add_argument("--consensus", type=float, metavar="LEVEL",
                        help="export the pixels kept by at least this share of hypotheses (0 < LEVEL <= 1)")
    parser.add_argument("--rtstruct", type=Path, metavar="OUT", help="DICOM RT Structure Set")
    parser.add_argument("--seg", type=Path, metavar="OUT", help="DICOM SEG, BINARY")
    parser.add_argument("--seg-fractional", type=Path, metavar="OUT",
                        help="DICOM SEG, FRACTIONAL: mean probability of all hypotheses")
    parser.add_argument("--nifti", type=Path, metavar="OUT", help="NIfTI mask (.nii or .nii.gz)")
    parser.add_argument("--nifti-probability", type=Path, metavar="OUT",
                        help="NIfTI mean probability map (.nii or .nii.gz)")
    parser.add_argument("--name", default=None, help="ROI / segment name (default: model and choice)")
    parser.add_argument("--color", default="255,64,64", help="display colour R,G,B (default 255,64,64)")
    parser.add_argument("--type", dest="interpreted_type", default="GTV",
                        help="RT ROI Interpreted Type (default GTV; e.g. ORGAN, CONTROL)")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ...export.atomic import default_export_dir, safe_filename
    from ...export.items import ExportError
    from ...imaging.loader import LoadError, load_path
    from ...session.result import ResultFileError, SegmentationResult

    try:
        result = SegmentationResult.load(args.result)
    except ResultFileError as exc:
        raise CliError(str(exc)) from exc
    try:
        volume, _ = load_path(args.series, series_uid=result.series_uid or None)
    except LoadError as exc:
        raise CliError(str(exc)) from exc
    _check_match(result, volume, args)
    mask_item, prob_item = _items(result, args)
    outputs = {"rtstruct": args.rtstruct, "seg": args.seg, "seg_fractional": args.seg_fractional,
               "nifti": args.nifti, "nifti_probability": args.nifti_probability}
    if not any(outputs.values()):
        outputs["rtstruct"] = default_export_dir(volume)
    stem = safe_filename(mask_item.name)
    written, notes = [], []
    try:
        for kind, out in outputs.items():
            if out is None:
                continue
            path, more = _write(kind, _resolve(out, stem, kind), mask_item, prob_item, volume)
            written.append({"kind": kind, "path": str(path)})
            notes += more
    except ExportError as exc:
        done = "; already written: " + ", ".join(w["path"] for w in written) if written else ""
        raise CliError(str(exc) + done) from exc
    if args.json:
        print(json.dumps({"item": mask_item.name, "written": written, "notes": notes}, indent=2))
    else:
        for w in written:
            print(f"{w['kind']}: {w['path']}")
        for note in notes:
            print(f"note: {note}")
    return 0


def _check_match(result, volume, args) -> None:
    if tuple(result.volume_shape) != tuple(volume.shape):
        raise CliError(f"{args.result} was computed on a {tuple(result.volume_shape)} volume, but the series in "
                       f"{args.series} is {tuple(volume.shape)}")
    frame = volume.identity.frame_of_reference_uid
    if result.frame_of_reference_uid and frame and result.frame_of_reference_uid != frame:
        raise CliError(f"{args.result} belongs to frame of reference {result.frame_of_reference_uid}, the series in "
                       f"{args.series} to {frame}")


def _items(result, args):
    """The chosen mask and the mean probability map, as ExportItems on the volume grid."""
    from ...export.items import ExportItem
    from ...uncertainty.consensus import consensus_mask
    from ...uncertainty.maps import mean_probability

    model = result.model_title or result.model or "unknown model"
    digest = f", checkpoint sha256 {result.digest}" if result.digest else ""
    if args.hypothesis is not None:
        if not 1 <= args.hypothesis <= result.n:
            raise CliError(f"--hypothesis {args.hypothesis}: {args.result} holds hypotheses 1 to {result.n}")
        roi_mask = result.masks()[args.hypothesis - 1]
        choice, short = f"hypothesis {args.hypothesis} of {result.n}", f"h{args.hypothesis}"
    else:
        if not 0 < args.consensus <= 1:
            raise CliError(f"--consensus {args.consensus}: the level is a share in (0, 1], e.g. 0.5")
        roi_mask = consensus_mask(result.probs, args.consensus)
        choice = f"consensus of at least {args.consensus:.0%} of {result.n} hypotheses"
        short = f"consensus {args.consensus:.0%}"
    color = _color(args.color)
    common = {"interpreted_type": args.interpreted_type.upper(), "algorithm": model,
              "algorithm_version": result.digest,
              "generation": "SEMIAUTOMATIC" if result.prompts else "AUTOMATIC"}
    name = args.name or f"{result.model or 'AmbiView'} {short}"
    mask_item = ExportItem(name[:64], result.mask_to_volume(roi_mask), color,
                           description=f"{model}{digest}, {choice}", **common)
    mean = mean_probability(result.probs)
    prob_item = ExportItem(f"{name[:52]} mean prob", result.to_volume(mean.astype("float32")).clip(0, 1), color,
                           description=f"{model}{digest}, mean probability of {result.n} hypotheses", **common)
    return mask_item, prob_item


def _color(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise CliError(f"--color {text}: give three values 0-255 separated by commas, e.g. 255,64,64")
    return values


def _resolve(out: Path, stem: str, kind: str) -> Path:
    """OUT as given, or a default file name inside OUT when it is a folder (existing, or the default export dir)."""
    from ...export.bundle import default_path

    out = Path(out).expanduser()
    if out.is_dir() or not out.suffix:
        return default_path(out, kind, stem)
    return out


def _write(kind: str, path: Path, mask_item, prob_item, volume) -> tuple[Path, list[str]]:
    from ...export.bundle import write_format

    item = prob_item if kind in ("seg_fractional", "nifti_probability") else mask_item
    return write_format(kind, [item], volume, path)
