"""Training the Segmentation Schrödinger Bridge on a lidc-crops64-like folder (`train/` to fit, `validate/` to select).

One training step, per crop (all choices ours, see models/ssb.md):
1. one rater's mask drawn at random becomes x0 (in [-1, 1]); the crop gives x1 = tanh(crop); a grid time t is drawn
   uniformly and x_t from the bridge marginal q(x_t | x0, x1);
2. with probability `cond_drop` the image condition is dropped (classifier-free guidance);
3. the U-Net draws K = `ed_samples` samples s_1..s_K of x0 from the same x_t (different latent and pixel noise);
4. diversity-preserving term: the energy distance between the samples and the rater set,
       ED = sum_j w_j mean_k ||s_k - y_j|| - 1/2 mean_{k != k'} ||s_k - s_k'||,
   norms over the whole mask (probabilities, divided by sqrt(H W)), where w_j = q(rater j | x_t) is the bridge's own
   posterior over the raters of this crop (w_j ∝ N(x_t; mu_t(y_j, x1), Sigma_t)): near the image end, where x_t no
   longer tells the raters apart, the samples must spread like the raters; near the mask end they must agree with
   the rater that x_t came from.  The energy distance is a proper scoring rule, so its optimum is the bridge's true
   posterior of x0 given x_t, which is what the sampler needs;
5. plus `bce_weight` x the binary cross-entropy between the mean of the K samples and the posterior-weighted rater
   mean (a per-pixel calibration term that speeds up early training).
Adam, random flips/90-degree rotations of each crop, model selection by GED (16 hypotheses at 50 steps) on an evenly
spread subset of `validate`, then the guidance scale from `guidance_grid` with the lowest GED on that subset.
Seeded and deterministic on the CPU: same seed, same weights.  Uses CUDA when present.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..uncertainty.metrics import ged
from .base import ModelError, checked_checkpoint_path, select_device
from .lidc import LidcItem, check_split, load_split
from .ssb import ENGINE_TITLE, SsbConfig, SsbModel, bridge_sample, checkpoint_metadata, hypothesis_generators, \
    save_checkpoint
from .ssb_schedule import BridgeSchedule
from .ssb_unet import SsbUNetConfig
from .train_probsam import deterministic
from .trainers import TrainRequest, epochs_until_stopped

DATA_ATTRIBUTION = "LIDC-IDRI (Armato et al. 2011, CC BY 3.0); crops from rCampSemp/learn-vae-noisy-label"


@dataclass
class TrainConfig:
    """Training settings (stored in the checkpoint's metadata as `training`)."""

    epochs: int = 24
    batch_size: int = 8         # crops per step; the network sees batch_size * ed_samples inputs
    ed_samples: int = 3         # K samples of x0 per crop for the energy distance
    lr: float = 1e-3
    lr_final: float = 1e-4      # cosine decay to this learning rate
    cond_drop: float = 0.15     # probability of dropping the image condition
    ed_weight: float = 1.0
    bce_weight: float = 5.0
    augment: int = 1            # random flips / 90-degree rotations
    val_items: int = 12         # validation subset (evenly spread over `validate`)
    val_every: int = 6          # epochs between validations (the last epoch is always validated)
    val_samples: int = 16
    val_steps: int = 50
    guidance_grid: str = "0,0.3"  # w = 1 gave GED 0.58 against 0.37 at w = 0 in a 6-epoch pilot
    threads: int = 0            # torch CPU threads; 0: torch's default


_MODEL_KEYS = {"beta_end", "beta_mid", "n_train", "image_scale", "start_noise", "widths", "blocks", "latent_dim",
               "noise_channels", "emb_dim"}


def configs_from_request(request: TrainRequest) -> tuple[SsbConfig, TrainConfig]:
    """The model and training configurations with the request's --epochs and --option KEY=VALUE applied."""
    train_config = TrainConfig()
    model_values: dict[str, str] = {}
    types = {f.name: f.type for f in fields(TrainConfig)}
    for key, raw in request.options.items():
        if key in _MODEL_KEYS:
            model_values[key] = raw
            continue
        if key not in types:
            settable = ", ".join(sorted([*types, *_MODEL_KEYS]))
            raise ModelError(f"unknown option {key!r} for ssb (settable: {settable})")
        try:
            value = raw if types[key] in ("str", str) else (float(raw) if types[key] in ("float", float) else int(raw))
        except ValueError as exc:
            raise ModelError(f"option {key}={raw!r} is not a number") from exc
        setattr(train_config, key, value)
    if request.epochs is not None:
        train_config.epochs = request.epochs
    _check(train_config)
    try:
        unet = SsbUNetConfig()
        schedule = BridgeSchedule()
        for key in ("widths",):
            if key in model_values:
                unet = replace(unet, widths=tuple(int(v) for v in model_values[key].split(",")))
        for key in ("blocks", "latent_dim", "noise_channels", "emb_dim"):
            if key in model_values:
                unet = replace(unet, **{key: int(model_values[key])})
        for key in ("beta_end", "beta_mid"):
            if key in model_values:
                schedule = replace(schedule, **{key: float(model_values[key])})
        if "n_train" in model_values:
            schedule = replace(schedule, n_train=int(model_values["n_train"]))
        config = SsbConfig(unet=unet, schedule=schedule,
                           image_scale=float(model_values.get("image_scale", SsbConfig.image_scale)),
                           start_noise=float(model_values.get("start_noise", SsbConfig.start_noise)),
                           steps=min(SsbConfig.steps, schedule.n_train))
    except ValueError as exc:
        raise ModelError(f"bad model option: {exc}") from exc
    return config, train_config


def _check(c: TrainConfig) -> None:
    if min(c.epochs, c.batch_size, c.val_every, c.val_samples, c.val_steps, c.val_items) < 1 or c.ed_samples < 2:
        raise ModelError("epochs, batch_size, val_every, val_samples, val_steps, val_items must be >= 1 and "
                         "ed_samples >= 2")
    if not 0 <= c.cond_drop < 1 or c.lr <= 0 or c.lr_final <= 0 or c.ed_weight < 0 or c.bce_weight < 0:
        raise ModelError("cond_drop must be in [0, 1), lr and lr_final > 0, the loss weights >= 0")
    guidance_values(c.guidance_grid)


def guidance_values(text: str) -> list[float]:
    """The guidance grid "0,0.5,1" as floats (ModelError for anything else)."""
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError as exc:
        raise ModelError(f"guidance_grid {text!r}: expected comma-separated numbers") from exc
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise ModelError(f"guidance_grid {text!r}: expected finite numbers >= 0")
    return values


# --------------------------------------------------------------------------------------------------- data


@dataclass
class CropTensors:
    """A split as tensors: scans (N, 1, H, W), raters (N, R_max, H, W) 0/1 float, valid (N, R_max) bool."""

    scans: torch.Tensor
    raters: torch.Tensor
    valid: torch.Tensor

    @classmethod
    def from_items(cls, items: list[LidcItem]) -> "CropTensors":
        r_max = max(item.raters.shape[0] for item in items)
        h, w = items[0].scan.shape
        raters = np.zeros((len(items), r_max, h, w), np.float32)
        valid = np.zeros((len(items), r_max), bool)
        for i, item in enumerate(items):
            if item.scan.shape != (h, w):
                raise ModelError(f"{item.name}: crop shape {item.scan.shape} differs from the others' {(h, w)}")
            raters[i, :item.raters.shape[0]] = item.raters
            valid[i, :item.raters.shape[0]] = True
        scans = np.stack([item.scan for item in items])[:, None].astype(np.float32)
        return cls(torch.from_numpy(scans), torch.from_numpy(raters), torch.from_numpy(valid))


def _augment(scans: torch.Tensor, raters: torch.Tensor, codes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """One of the 8 flips/rotations per crop (code 0 = identity), the same for the crop and its rater masks."""
    out_s, out_r = [], []
    for scan, rater, code in zip(scans, raters, codes):
        scan, rater = torch.rot90(scan, int(code) % 4, (-2, -1)), torch.rot90(rater, int(code) % 4, (-2, -1))
        if code >= 4:
            scan, rater = scan.flip(-1), rater.flip(-1)
        out_s.append(scan)
        out_r.append(rater)
    return torch.stack(out_s), torch.stack(out_r)


# --------------------------------------------------------------------------------------------------- loss


def bridge_loss(model: SsbModel, scans: torch.Tensor, raters: torch.Tensor, valid: torch.Tensor,
                chosen: torch.Tensor, t: np.ndarray, cond: torch.Tensor, gen: torch.Generator,
                config: TrainConfig) -> dict[str, torch.Tensor]:
    """Energy-distance + calibration loss of one batch (see the module docstring); returns the terms (batch means).

    scans (B, 1, H, W); raters (B, R, H, W) in {0, 1}; valid (B, R); chosen (B,) the rater building x_t; t (B,) grid
    times; cond (B,) 1 = image given, 0 = dropped; gen: the CPU generator of all Gaussian noise."""
    device = scans.device
    b, _, h, w = scans.shape
    k = config.ed_samples
    c0, c1, var = (torch.as_tensor(v, dtype=torch.float32, device=device)[:, None, None, None]
                   for v in model.schedule.marginal(t))
    x1 = model.image_end(scans)
    x0_all = 2.0 * raters - 1.0
    x0 = x0_all[torch.arange(b, device=device), chosen][:, None]
    eps = torch.randn((b, 1, h, w), generator=gen).to(device)
    x_t = c0 * x0 + c1 * x1 + var.sqrt() * eps

    weights = rater_posterior(x_t, x0_all, x1, c0, c1, var, valid)

    latent = torch.randn((b * k, model.config.unet.latent_dim), generator=gen).to(device)
    pixel_noise = torch.randn((b * k, model.config.unet.noise_channels, h, w), generator=gen).to(device)

    def rep(x: torch.Tensor) -> torch.Tensor:  # item i's K copies are adjacent
        return x.repeat_interleave(k, dim=0)

    t_k = torch.as_tensor(np.repeat(t, k), dtype=torch.float32, device=device)
    logits = model.logits(rep(x_t), rep(scans), t_k, latent, pixel_noise, cond=rep(cond))
    probs = torch.sigmoid(logits).reshape(b, k, h * w)

    scale = math.sqrt(h * w)
    targets = raters.reshape(b, -1, h * w)
    d_sy = _norm(probs[:, :, None] - targets[:, None]) / scale                 # (B, K, R)
    d_ss = _norm(probs[:, :, None] - probs[:, None]) / scale                   # (B, K, K), zero diagonal
    term_sy = (d_sy.mean(dim=1) * weights).sum(dim=1)
    term_ss = d_ss.sum(dim=(1, 2)) / (k * (k - 1))
    energy = term_sy - 0.5 * term_ss

    mean_prob = probs.mean(dim=1).clamp(1e-6, 1 - 1e-6)
    mean_target = (weights[:, :, None] * targets).sum(dim=1).clamp(0.0, 1.0)
    bce = F.binary_cross_entropy(mean_prob, mean_target, reduction="none").mean(dim=1)
    total = config.ed_weight * energy + config.bce_weight * bce
    return {"loss": total.mean(), "energy": energy.mean().detach(), "bce": bce.mean().detach(),
            "spread": term_ss.mean().detach()}


def rater_posterior(x_t: torch.Tensor, x0_all: torch.Tensor, x1: torch.Tensor, c0: torch.Tensor, c1: torch.Tensor,
                    var: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """q(rater j | x_t) ∝ N(x_t; c0 x0_j + c1 x1, var) over the valid raters: (B, R), rows summing to 1.

    x_t, x1 (B, 1, H, W); x0_all (B, R, H, W); c0, c1, var (B, 1, 1, 1); valid (B, R).  Uniform at t = 1 (every
    rater gives the same mean), one-hot near t = 0."""
    d2 = ((x_t - c0 * x0_all - c1 * x1) ** 2).sum(dim=(2, 3))
    logw = (-d2 / (2.0 * var[:, :, 0, 0].clamp_min(1e-12))).masked_fill(~valid, -math.inf)
    return torch.softmax(logw, dim=1)


def _norm(diff: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last axis, smooth at zero (the gradient of |x| at 0 is undefined)."""
    return torch.sqrt((diff * diff).sum(dim=-1) + 1e-8)


# --------------------------------------------------------------------------------------------------- validation


def validation_subset(count: int, size: int) -> list[int]:
    """`size` indices spread evenly over `count` items (all when size >= count)."""
    if size >= count:
        return list(range(count))
    return sorted({int(round(v)) for v in np.linspace(0, count - 1, size)})


def validate(model: SsbModel, items: list[LidcItem], samples: int, steps: int, guidance: float,
             device: torch.device) -> tuple[float, np.ndarray]:
    """Mean GED of `samples` hypotheses (seed = item index, thresholded at 0.5) against the raters, and the probs."""
    model.eval()
    geds, all_probs = [], []
    for i, item in enumerate(items):
        scan = torch.from_numpy(item.scan)[None, None].to(device)
        probs = bridge_sample(model, scan, hypothesis_generators(i, 0, samples), steps, guidance,
                              model.config.start_noise).float().cpu().numpy()
        geds.append(ged(probs > 0.5, item.raters))
        all_probs.append(probs)
    return float(np.mean(geds)), np.stack(all_probs)


# --------------------------------------------------------------------------------------------------- training


def train(request: TrainRequest) -> dict:
    """Train, select on validation, write the checkpoint to `request.out`; returns a JSON-ready summary."""
    log = request.log
    config, tc = configs_from_request(request)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = select_device(request.device)
    out = checked_checkpoint_path(request.out)
    data = Path(request.data)
    if not data.is_dir():
        raise ModelError(f"{data}: no such folder (expected the lidc-crops64 root with train/ and validate/)")
    train_items = load_split(check_split(data / "train"), request.limit)
    val_items = load_split(check_split(data / "validate"), request.limit)
    val_subset = [val_items[i] for i in validation_subset(len(val_items), tc.val_items)]
    out.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(out.parent, os.W_OK):
        raise ModelError(f"{out.parent}: folder is not writable")
    log(f"ssb: {len(train_items)} train crops, validation on {len(val_subset)} of {len(val_items)}, device {device}, "
        f"{torch.get_num_threads()} CPU threads")

    started, cpu_started = time.perf_counter(), time.process_time()
    with deterministic(device):
        result = _fit(request.seed, config, tc, device, CropTensors.from_items(train_items), val_subset, log)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    model: SsbModel = result["model"]
    meta = checkpoint_metadata(
        replace(config, guidance=result["guidance"]), title=ENGINE_TITLE,
        training=json.dumps(asdict(tc), sort_keys=True), command=request.command, seed=request.seed,
        best_epoch=result["best_epoch"], val_ged=f"{result['val_ged']:.4f}",
        val_ged_float32=f"{result['val_ged_float32']:.4f}", guidance_search=json.dumps(result["guidance_search"]),
        fp16_max_abs_prob_diff=f"{result['fp16_max_abs_prob_diff']:.2e}", history=json.dumps(result["history"]),
        train_items=len(train_items), val_items=f"{len(val_subset)} of {len(val_items)}",
        stopped_early="no" if result["stopped_after_epoch"] is None else f"after epoch {result['stopped_after_epoch']}",
        train_seconds=f"{seconds:.0f}", train_cpu_seconds=f"{cpu_seconds:.0f}", device=str(device),
        threads=torch.get_num_threads(), torch=torch.__version__,
        data=DATA_ATTRIBUTION)
    model.config = replace(config, guidance=result["guidance"])
    save_checkpoint(out, model, meta, half=True)
    size_mb = out.stat().st_size / 1e6
    log(f"wrote {out} ({size_mb:.1f} MB): best epoch {result['best_epoch']}, guidance {result['guidance']}, "
        f"validation GED {result['val_ged']:.4f} (float16 weights), {seconds / 60:.1f} min in all "
        f"({cpu_seconds / 60:.1f} min of CPU time)")
    return {"out": str(out), "size_mb": round(size_mb, 2), "best_epoch": result["best_epoch"],
            "guidance": result["guidance"], "val_ged": result["val_ged"], "train_seconds": round(seconds, 1),
            "train_cpu_seconds": round(cpu_seconds, 1),
            "history": result["history"], "guidance_search": result["guidance_search"]}


def _fit(seed: int, config: SsbConfig, tc: TrainConfig, device: torch.device, data: CropTensors,
         val_items: list[LidcItem], log: Callable[[str], None]) -> dict:
    torch.manual_seed(seed)
    model = SsbModel(config).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr)
    n = data.scans.shape[0]
    steps_per_epoch = math.ceil(n / tc.batch_size)
    total_steps = tc.epochs * steps_per_epoch

    def cosine(step: int) -> float:  # learning-rate factor: cosine from 1 to lr_final / lr
        floor = tc.lr_final / tc.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))

    lr_sched = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
    best: dict = {"ged": math.inf}
    history: list[dict] = []
    fit_started = time.perf_counter()
    with epochs_until_stopped(history, log) as stopped:
        for epoch in range(1, tc.epochs + 1):
            model.train()
            rng = np.random.default_rng([seed, epoch])
            gen = torch.Generator(device="cpu").manual_seed(seed * 100_003 + epoch)
            sums: dict[str, float] = {}
            order = rng.permutation(n)
            for start in range(0, n, tc.batch_size):
                index = torch.from_numpy(order[start:start + tc.batch_size])
                b = len(index)
                scans, raters, valid = data.scans[index], data.raters[index], data.valid[index]
                if tc.augment:
                    scans, raters = _augment(scans, raters, rng.integers(8, size=b))
                counts = valid.sum(dim=1).numpy()
                chosen = torch.from_numpy((rng.random(b) * counts).astype(np.int64))
                t = model.schedule.training_times(rng, b)
                cond = torch.from_numpy((rng.random(b) >= tc.cond_drop).astype(np.float32))
                terms = bridge_loss(model, scans.to(device), raters.to(device), valid.to(device), chosen.to(device), t,
                                    cond.to(device), gen, tc)
                if not torch.isfinite(terms["loss"]):
                    raise ModelError(f"training diverged at epoch {epoch} (loss {terms['loss'].item()}); "
                                     f"try a lower lr option")
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                lr_sched.step()
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) * b
            record = {"epoch": epoch, **{k: round(v / n, 5) for k, v in sums.items()},
                      "minutes": round((time.perf_counter() - fit_started) / 60, 1)}
            if epoch % tc.val_every == 0 or epoch == tc.epochs:
                val, probs = validate(model, val_items, tc.val_samples, tc.val_steps, 0.0, device)
                record["val_ged"] = round(val, 4)
                record["minutes"] = round((time.perf_counter() - fit_started) / 60, 1)
                if val < best["ged"]:
                    best = {"ged": val, "epoch": epoch, "probs": probs,
                            "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
            history.append(record)
            log(f"epoch {epoch}: " + ", ".join(f"{k} {v}" for k, v in record.items() if k != "epoch"))
    stopped_after = stopped.after
    if "state" not in best:
        raise ModelError("stopped before the first validation, or its GED was never finite: no epoch to keep")

    # Keep the best epoch with float16-rounded weights (what the checkpoint stores), then choose the guidance scale.
    model.load_state_dict({k: v.half().float() for k, v in best["state"].items()})
    search = {}
    probs_half = None
    for w in guidance_values(tc.guidance_grid):
        val, probs = validate(model, val_items, tc.val_samples, tc.val_steps, w, device)
        search[str(w)] = round(val, 4)
        if w == 0.0:
            probs_half = probs
        log(f"guidance {w}: validation GED {val:.4f}")
    chosen_w = min(search, key=lambda key: (search[key], float(key)))
    diff = float(np.max(np.abs(probs_half - best["probs"]))) if probs_half is not None else math.nan
    log(f"best epoch {best['epoch']}: validation GED {best['ged']:.4f} with float32 weights; guidance {chosen_w} "
        f"gives {search[chosen_w]:.4f} with float16 weights (max |p difference| at w=0: {diff:.1e})")
    return {"model": model.cpu().to(memory_format=torch.contiguous_format), "best_epoch": best["epoch"],
            "val_ged": search[chosen_w], "val_ged_float32": best["ged"], "guidance": float(chosen_w),
            "guidance_search": search, "fp16_max_abs_prob_diff": diff, "history": history,
            "stopped_after_epoch": stopped_after}
