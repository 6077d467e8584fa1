"""A weight average of Probabilistic SAM checkpoints ("model soup", Wortsman et al., ICML 2022).

The tensor-wise mean of checkpoints that were fine-tuned from one another or from one start: such runs stay in one
basin of the loss, where the mean of their weights is often better than each of them. Runs trained apart from one
another read the latent z each their own way, and their mean keeps the masks but loses the spread (the model card,
"model soups"). Whether the inputs share a start is the user's judgement, so it is not checked; what they were is
recorded in the metadata (`averaged_from`). What is checked is that the mean is defined: the same tensors, the same
backbone and the same architecture. The sampling settings (temperature, draws, box jitter, box bound) are the first
checkpoint's; `benchmarks/probsam_temperature.py --save` chooses them again for the average.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .base import ModelError, checked_checkpoint_path, file_sha256, read_checkpoint, short_digest
from .probsam import CHECKPOINT_FORMAT, ProbSamConfig, save_checkpoint
from .train_probsam import ARCHITECTURE

# metadata that describes the model and carries over; the rest (seed, epochs, validation history) described one run
KEPT_METADATA = ("format", "engine", "title", "dims", "backbone", "backbone_sha256", "backbone_spec", "backbone_file",
                 "config", "data", "train_items", "val_items", "torch")


def average_checkpoints(paths: Sequence[Path], out: Path, command: str = "") -> str:
    """Write the tensor-wise mean of two or more Probabilistic SAM checkpoints to `out` (atomically); returns its
    short digest. ModelError naming the file when an input cannot be averaged with the first."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ModelError(f"averaging needs at least two checkpoints, got {len(paths)}")
    out = checked_checkpoint_path(out)
    if any(out.resolve() == p.resolve() for p in paths):
        raise ModelError(f"{out}: is one of the checkpoints being averaged; write the average to a new file")
    first_tensors, first_meta = read_checkpoint(paths[0], CHECKPOINT_FORMAT, "a Probabilistic SAM checkpoint")
    first_config = ProbSamConfig.from_json(first_meta.get("config", "{}"))
    sums = {key: tensor.float() for key, tensor in first_tensors.items()}
    for path in paths[1:]:
        tensors, meta = read_checkpoint(path, CHECKPOINT_FORMAT, "a Probabilistic SAM checkpoint")
        if meta.get("backbone_sha256") != first_meta.get("backbone_sha256"):
            raise ModelError(f"{path}: trained on another backbone than {paths[0].name}")
        config = ProbSamConfig.from_json(meta.get("config", "{}"))
        for name in ARCHITECTURE:
            if getattr(config, name) != getattr(first_config, name):
                raise ModelError(f"{path}: {name}={getattr(config, name)}, but {paths[0].name} has "
                                 f"{name}={getattr(first_config, name)}; only one architecture can be averaged")
        if tensors.keys() != first_tensors.keys():
            missing = sorted(first_tensors.keys() - tensors.keys()) or sorted(tensors.keys() - first_tensors.keys())
            raise ModelError(f"{path}: holds other tensors than {paths[0].name} (first difference: {missing[0]})")
        for key, tensor in tensors.items():
            if tensor.shape != first_tensors[key].shape:
                raise ModelError(f"{path}: tensor {key} is {tuple(tensor.shape)}, in {paths[0].name} "
                                 f"{tuple(first_tensors[key].shape)}")
            sums[key] += tensor.float()
    # the mean in float32, stored in each tensor's own dtype (the deltas' float16 stays float16)
    averaged = {key: (total / len(paths)).to(first_tensors[key].dtype).contiguous() for key, total in sums.items()}
    meta = {key: first_meta[key] for key in KEPT_METADATA if key in first_meta}
    meta["averaged_from"] = json.dumps([f"{p.name} ({short_digest(file_sha256(p))})" for p in paths])
    meta["command"] = command
    save_checkpoint(out, averaged, meta)  # atomically, making the folder when it is missing
    return short_digest(file_sha256(out))
