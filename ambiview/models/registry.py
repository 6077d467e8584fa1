"""Finds the installed engines: checkpoints in `ambiview.paths.models_dir()` plus engines that need no checkpoint.

A checkpoint is a `.safetensors` file whose metadata names its engine family (`engine`) and a display `title`; the
engine's name is the file stem (e.g. `probsam-litemedsam`).  FAMILIES maps a family to the loader
"module:callable(path, device) -> Engine"; BUILTIN maps a name to a factory "module:callable(device) -> Engine" for
engines built from pretrained weights alone (e.g. a deterministic baseline).  Other model families add entries.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import torch

from ..paths import models_dir
from .base import Engine, EngineInfo, ModelError, file_sha256, short_digest

FAMILIES: dict[str, str] = {
    "probsam": "ambiview.models.probsam:ProbSamEngine.from_checkpoint",
    "ssb": "ambiview.models.ssb:SsbEngine.from_checkpoint",
    "probunet": "ambiview.models.probunet:ProbUNetEngine.from_checkpoint",
    "upsam": "ambiview.models.upsam:UpSamEngine.from_checkpoint",
}
BUILTIN: dict[str, tuple[str, str]] = {  # name -> ("module:factory", title)
    "litemedsam": ("ambiview.models.litemedsam_baseline:single", "LiteMedSAM (deterministic, one mask)"),
    "litemedsam-multimask": ("ambiview.models.litemedsam_baseline:multimask", "LiteMedSAM multimask (3 fixed masks)"),
}

# family -> "module:callable(metadata) -> str": a line on how a checkpoint samples, for the model picker
SAMPLING_NOTES: dict[str, str] = {"probsam": "ambiview.models.probsam:sampling_note"}
MIRROR_VIEW_FAMILIES = frozenset({"probsam"})  # engines with `views` (mirror_views.py)

_DIGESTS: dict[tuple[str, int, int], str] = {}


def resolve(target: str) -> Callable:
    """The callable named by "package.module:attr[.attr]"."""
    module_name, _, attr_path = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def checkpoint_digest(path: Path) -> str:
    """Short sha256 of a checkpoint file (remembered per size and mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = short_digest(file_sha256(path))
    return _DIGESTS[key]


def _read_metadata(path: Path) -> dict[str, str] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception:  # a damaged or foreign file is not an engine; list_engines skips it
        return None


def _checkpoints() -> list[tuple[Path, dict[str, str]]]:
    root = models_dir()
    found = []
    for path in sorted(root.glob("*.safetensors")) if root.is_dir() else []:
        meta = _read_metadata(path)
        if meta is not None and meta.get("engine") in FAMILIES:
            found.append((path, meta))
    return found


def list_engines() -> list[EngineInfo]:
    """Every engine that can be loaded here: checkpoints in the models folder, then the built-in ones."""
    infos = []
    for path, meta in _checkpoints():
        dims = int(meta.get("dims", "2"))
        family = meta.get("engine", "")
        note = resolve(SAMPLING_NOTES[family])(meta) if family in SAMPLING_NOTES else ""
        infos.append(EngineInfo(path.stem, meta.get("title", path.stem), path, checkpoint_digest(path), dims, note,
                                mirror_views=family in MIRROR_VIEW_FAMILIES))
    for name, (_, title) in sorted(BUILTIN.items()):
        infos.append(EngineInfo(name, title, None, "", 2))
    return infos


def load_engine(name: str, device: str | torch.device | None = None) -> Engine:
    """Load an engine by name (a checkpoint stem in the models folder, a built-in name) or by checkpoint path."""
    candidate = Path(name).expanduser()
    if candidate.suffix == ".safetensors" and candidate.is_file():
        meta = _read_metadata(candidate)
        if meta is None or meta.get("engine") not in FAMILIES:
            raise ModelError(f"{candidate}: not an AmbiView engine checkpoint (no known 'engine' in its metadata)")
        return resolve(FAMILIES[meta["engine"]])(candidate, device)
    for path, meta in _checkpoints():
        if path.stem == name:
            return resolve(FAMILIES[meta["engine"]])(path, device)
    if name in BUILTIN:
        return resolve(BUILTIN[name][0])(device)
    known = ", ".join(info.name for info in list_engines()) or "none installed"
    raise ModelError(f"unknown model {name!r} (installed: {known}; models folder: {models_dir()})")
