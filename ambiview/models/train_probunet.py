"""Train the Probabilistic U-Net baseline on lidc-crops64 `train`, select the epoch by GED on `validate`.

Recipe (the PyTorch port's defaults, see probunet.py): Adam lr 1e-4, batch 5, one rater drawn at random per item and
epoch (an empty rater mask is a valid answer, as in Kohl et al.: it teaches the model that a rater may see no nodule
on this slice).  Our additions, in the model card: a random flip/90-degree rotation per item (nodules have no preferred
orientation; the standardisation is rotation invariant), and model selection by GED(16 prior samples) on `validate`.
Seeded and deterministic on the CPU: same seed, same weights (an epoch depends on (seed, epoch) only, so the first k
epochs of a longer run equal a k-epoch run).  The best epoch is written at every improvement; Ctrl+C or SIGTERM stops
after keeping it (the record says `stopped_early`).  The checkpoint is safetensors, float16 (the half
precision cost is measured and stored in its metadata), with the config and training record as metadata.

    ambiview-cli train probunet --data ../shared/data/lidc-crops64 --out models/probunet.safetensors --option threads=1
    python -m ambiview.models.train_probunet --threads 1      (the same, with this module's own flags)
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import save_file

from ..paths import models_dir, shared_data_dir
from ..uncertainty.metrics import ged
from .base import ModelError, checked_checkpoint_path, select_device
from .lidc import LidcItem, check_split, load_split
from .probunet import CHECKPOINT_FORMAT, ENGINE_FAMILY, ENGINE_TITLE, ProbUNet, ProbUNetConfig
from .trainers import epochs_until_stopped, typed_options

if TYPE_CHECKING:
    from .trainers import TrainRequest

DATA_ATTRIBUTION = "LIDC-IDRI, Armato et al. 2011, CC BY 3.0; crops from rCampSemp/learn-vae-noisy-label"


@dataclass
class TrainOptions:
    data: Path
    out: Path
    epochs: int = 20
    batch_size: int = 5
    lr: float = 1e-4
    seed: int = 0
    device: str | None = None
    limit: int | None = None
    threads: int | None = None
    val_samples: int = 16
    augment: bool = True


def _dihedral(array: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 flips/rotations of the last two axes (code 0 = identity)."""
    out = np.rot90(array, k=code % 4, axes=(-2, -1))
    return np.flip(out, axis=-1) if code >= 4 else out


def _epoch_batches(items: list[LidcItem], epoch: int, options: TrainOptions):
    """Shuffled (image, mask) batches of one epoch; rater choice and augmentation drawn from (seed, epoch)."""
    rng = np.random.default_rng([options.seed, epoch])
    order = rng.permutation(len(items))
    for start in range(0, len(order), options.batch_size):
        images, masks = [], []
        for index in order[start:start + options.batch_size]:
            item = items[index]
            mask = item.raters[rng.integers(item.raters.shape[0])]
            code = int(rng.integers(8)) if options.augment else 0
            images.append(_dihedral(item.scan, code))
            masks.append(_dihedral(mask, code))
        yield (torch.from_numpy(np.stack(images)[:, None].astype(np.float32)),
               torch.from_numpy(np.stack(masks)[:, None].astype(np.float32)))


@torch.no_grad()
def prior_samples(model: ProbUNet, scans: np.ndarray, n: int, seed: int, device: torch.device,
                  batch: int = 16) -> np.ndarray:
    """(B, n, H, W) float32 probabilities from the prior for standardised crops (B, H, W); deterministic per seed."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(scans), batch):
        image = torch.from_numpy(np.ascontiguousarray(scans[start:start + batch], dtype=np.float32))[:, None]
        image = image.to(device)
        features = model.features(image)
        prior = model.prior(image)
        eps = torch.randn((image.shape[0], n, model.config.latent_dim), generator=generator).to(device)
        z = prior.base_dist.loc[:, None] + prior.base_dist.scale[:, None] * eps
        feats = features[:, None].expand(-1, n, -1, -1, -1).reshape(-1, *features.shape[1:])
        logits = model.decode(feats, z.reshape(-1, z.shape[-1]))
        out.append(torch.sigmoid(logits).reshape(image.shape[0], n, *image.shape[-2:]).float().cpu().numpy())
    return np.concatenate(out)


def validation_ged(model: ProbUNet, items: list[LidcItem], n: int, seed: int, device: torch.device) -> float:
    """Mean GED of n prior samples (thresholded at 0.5) against all raters, over the items."""
    samples = prior_samples(model, np.stack([it.scan for it in items]), n, seed, device)
    return float(np.mean([ged(s > 0.5, it.raters) for s, it in zip(samples, items)]))


def _half_roundtrip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.half().float() for k, v in state.items()}


def save_checkpoint(path: Path, state: dict[str, torch.Tensor], config: ProbUNetConfig, record: dict) -> None:
    """Write float16 weights + metadata atomically (temporary file in the target folder, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in state.items()}
    metadata = {"format": CHECKPOINT_FORMAT, "engine": ENGINE_FAMILY, "title": ENGINE_TITLE, "dims": "2",
                "config": json.dumps(config.to_dict()), "training": json.dumps(record), "data": DATA_ATTRIBUTION}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _split_dir(data: Path, split: str) -> Path:
    """`data` is the lidc-crops64 root: it must hold both `train/` and `validate/` in the split layout."""
    if not Path(data).is_dir():
        raise ModelError(f"{data}: no such folder (expected the lidc-crops64 root with train/ and validate/)")
    return check_split(Path(data) / split)


def train(options: TrainOptions, log: Callable[[str], None] = print, command: str = "") -> dict:
    """Train, keep the epoch with the lowest validation GED, write the checkpoint; returns the training record."""
    if options.epochs < 1 or options.batch_size < 1:
        raise ModelError("epochs and batch size must be at least 1")
    if options.threads:
        torch.set_num_threads(options.threads)
    device = select_device(options.device)
    torch.manual_seed(options.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    train_items = load_split(_split_dir(options.data, "train"), options.limit)
    val_items = load_split(_split_dir(options.data, "validate"), options.limit)
    log(f"train {len(train_items)} items, validate {len(val_items)} items, device {device}, "
        f"threads {torch.get_num_threads()}")

    config = ProbUNetConfig()
    model = ProbUNet(config).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=options.lr)
    best: dict | None = None
    history: list[dict] = []
    record_base = {
        "epochs": options.epochs, "batch_size": options.batch_size, "lr": options.lr, "seed": options.seed,
        "augment": options.augment, "val_samples": options.val_samples, "device": str(device),
        "threads": torch.get_num_threads(), "train_items": len(train_items), "val_items": len(val_items),
        "command": command,
    }
    started = time.monotonic()
    with epochs_until_stopped(history, log) as stopped:
        for epoch in range(1, options.epochs + 1):
            best = _run_epoch(options, config, model, optimiser, train_items, val_items, epoch, device, best,
                              record_base, history, started, log)
    stopped_after = stopped.after
    if best is None:
        raise ModelError("stopped before the first epoch finished: no checkpoint written")
    best["epochs_run"] = len(history)
    best["stopped_early"] = stopped_after is not None
    best["history"] = list(history)
    best["seconds"] = round(time.monotonic() - started, 1)
    best["final"] = True
    save_checkpoint(options.out, best.pop("_state"), config, best)
    log(f"best epoch {best['best_epoch']}: val GED {best['val_ged_float32']:.4f} "
        f"(float16 weights: {best['val_ged_float16']:.4f}); wrote {options.out}")
    return {k: v for k, v in best.items() if k != "_state"}


def _run_epoch(options: TrainOptions, config: ProbUNetConfig, model: ProbUNet, optimiser: torch.optim.Optimizer,
               train_items: list[LidcItem], val_items: list[LidcItem], epoch: int, device: torch.device,
               best: dict | None, record_base: dict, history: list[dict], started: float,
               log: Callable[[str], None]) -> dict:
    """One pass over the training items, then validation; returns the (possibly new) best record."""
    model.train()
    sums = np.zeros(3)
    steps = 0
    for image, mask in _epoch_batches(train_items, epoch, options):
        terms = model.loss(image.to(device), mask.to(device))
        if not torch.isfinite(terms.total):
            raise ModelError(f"training diverged at epoch {epoch} (loss {terms.total.item()}); try a lower --lr")
        optimiser.zero_grad(set_to_none=True)
        terms.total.backward()
        optimiser.step()
        sums += [terms.total.item() / image.shape[0], terms.reconstruction.item() / image.shape[0], terms.kl.item()]
        steps += 1
    val = validation_ged(model, val_items, options.val_samples, options.seed, device)
    loss, rec, kl = sums / max(steps, 1)
    history.append({"epoch": epoch, "loss": loss, "bce": rec, "kl": kl, "val_ged": val})
    log(f"epoch {epoch:3d}  loss/item {loss:9.2f}  bce/item {rec:9.2f}  kl {kl:6.3f}  val GED {val:.4f}  "
        f"{time.monotonic() - started:7.0f} s")
    if best is None or val < best["val_ged_float32"]:
        # Written at every improvement, so even a run that is killed leaves its best epoch behind.
        return _write_best(options, config, model, val_items, epoch, val, record_base, history, started)
    return best


def _write_best(options: TrainOptions, config: ProbUNetConfig, model: ProbUNet, val_items: list[LidcItem],
                epoch: int, val_ged: float, record_base: dict, history: list[dict], started: float) -> dict:
    """Save the current weights as the best so far, with the validation GED of their float16 rounding."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with torch.random.fork_rng(devices=[]):  # building a model draws initial weights: keep the training stream
        rounded = ProbUNet(config)
    rounded.load_state_dict(_half_roundtrip(state))
    device = next(model.parameters()).device
    val_half = validation_ged(rounded.to(device), val_items, options.val_samples, options.seed, device)
    record = dict(record_base, best_epoch=epoch, val_ged_float32=val_ged, val_ged_float16=val_half,
                  history=list(history), seconds=round(time.monotonic() - started, 1), final=False)
    save_checkpoint(options.out, state, config, record)
    record["_state"] = state
    return record


_OPTION_TYPES = {"batch_size": int, "lr": float, "threads": int, "val_samples": int, "augment": int}


def train_request(request: TrainRequest) -> dict:
    """Entry point of `ambiview-cli train probunet` (see trainers.py); options: batch_size, lr, threads,
    val_samples, augment=0|1."""
    if request.backbone:
        raise ModelError("the Probabilistic U-Net has no pretrained backbone; drop --backbone")
    settings = typed_options(request.options, _OPTION_TYPES, "probunet")
    if "augment" in settings:
        settings["augment"] = bool(settings["augment"])
    out = checked_checkpoint_path(request.out)
    options = TrainOptions(data=Path(request.data), out=out, seed=request.seed, device=request.device,
                           limit=request.limit, **settings)
    if request.epochs is not None:
        options.epochs = request.epochs
    return train(options, log=request.log, command=request.command)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="train_probunet", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="lidc-crops64 root (with train/ and validate/); default: the shared data")
    parser.add_argument("--out", type=Path, default=None, help="checkpoint to write (default: models/probunet.safetensors)")
    parser.add_argument("--epochs", type=int, default=TrainOptions.epochs)
    parser.add_argument("--batch-size", type=int, default=TrainOptions.batch_size)
    parser.add_argument("--lr", type=float, default=TrainOptions.lr)
    parser.add_argument("--seed", type=int, default=TrainOptions.seed)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N items of each split (smoke runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (e.g. 1 on a shared machine)")
    parser.add_argument("--val-samples", type=int, default=TrainOptions.val_samples)
    parser.add_argument("--no-augment", action="store_true", help="no random flips/rotations")
    return parser


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    return TrainOptions(
        data=args.data or shared_data_dir() / "lidc-crops64",
        out=args.out or models_dir() / "probunet.safetensors",
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
        limit=args.limit, threads=args.threads, val_samples=args.val_samples, augment=not args.no_augment,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        train(options_from_args(args), log=lambda line: print(line, flush=True),
              command=shlex.join(["python", "-m", "ambiview.models.train_probunet", *argv]))
    except ModelError as exc:
        print(f"train_probunet: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
