"""Training Probabilistic SAM on a lidc-crops64-like folder (`train/` to fit, `validate/` to select the epoch).

Per the authors' recipe: frozen encoder, Adam lr 1e-4, batch 1, 10 epochs, one rater's mask drawn at random per step,
loss BCE + soft Dice + 10 * KL(q || p); with box_source=rater the box is that rater's bounding box (central 25-75 % box
when the rater left the slice empty), as in their code.  Ours: box_source=consensus (default) prompts every rater's
mask with the consensus box, as evaluation and the app do; the encoder's embeddings are computed once and cached on
disk; the epoch with the best validation GED (16 prior samples per crop, box of the consensus mask) is kept; on a
fraction of the steps the box is replaced by 1-3 positive points inside the prompt's mask so that the model also
answers point prompts; optionally (`ema`) an exponential moving average of the weights is what is validated and kept,
(`energy_weight`) a sampled energy score against all raters is added to the loss, and (`train_views`) each step reads
a mirrored view of its crop drawn at random (flip augmentation); `init` starts from a checkpoint (fine-tuning: its
settings and weights, the optimiser fresh).
Seeded and deterministic on the CPU.  Writes only the tensors that differ from the pretrained backbone.
"""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .base import ModelError, ModelPrompts, box_support, checked_checkpoint_path, select_device
from .embedding_cache import EmbeddingCache
from .lidc import LidcItem, check_split, load_split
from .mirror_views import checked_views, flip
from .probsam import (
    CHECKPOINT_FORMAT,
    DELTA,
    LATENT_INPUTS,
    Z_INJECT,
    ENGINE_FAMILY,
    NEW,
    ProbSam,
    ProbSamConfig,
    ProbSamEngine,
    apply_checkpoint_tensors,
    backbone_reference,
    box_of_mask,
    checked_draws,
    checkpoint_tensors,
    file_sha256,
    free_bits_kl,
    kl_diag_gaussians,
    moved_boxes,
    prompts_per_box,
    read_checkpoint,
    save_checkpoint,
    short_digest,
    stored_backbone_spec,
    training_loss,
)
from .sam_backbone import Backbone, load_backbone
from ..uncertainty.metrics import ged
from .trainers import TrainRequest, epochs_until_stopped

ATTRIBUTION = "LIDC-IDRI (Armato et al. 2011, CC BY 3.0); crops from rCampSemp/learn-vae-noisy-label"
TITLES = {"litemedsam": "Probabilistic SAM (LiteMedSAM)", "sam_vit_b": "Probabilistic SAM (SAM ViT-B)",
          "sam_vit_l": "Probabilistic SAM (SAM ViT-L)", "sam_vit_h": "Probabilistic SAM (SAM ViT-H)",
          "tiny-random": "Probabilistic SAM (tiny random backbone, test only)"}


def train(request: TrainRequest) -> dict:
    """Train, select on validation, write the checkpoint to `request.out`; returns a summary."""
    log = request.log
    init = read_init(Path(request.init)) if request.init is not None else None
    config = _config(request, init.config if init is not None else None)
    device = select_device(request.device)
    data = Path(request.data)
    train_items = load_split(check_split(data / "train"), request.limit)
    val_items = load_split(check_split(data / "validate"), request.limit)
    out = checked_checkpoint_path(request.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(out.parent, os.W_OK):
        raise ModelError(f"{out.parent}: folder is not writable")

    started = time.perf_counter()
    if init is None:
        backbone = load_backbone(request.backbone)
    else:  # the backbone the checkpoint was trained on, and no other
        backbone = load_backbone(request.backbone or stored_backbone_spec(init.meta, init.path),
                                 expected_sha256=init.meta.get("backbone_sha256"))
        log(f"starting from {init.path} ({init.digest}): its settings and weights")
    backbone = backbone.to(device)
    log(f"backbone {backbone.spec} (sha256 {backbone.sha256[:12]}…), device {device}, "
        f"{len(train_items)} train / {len(val_items)} validation crops")
    cache = EmbeddingCache()
    train_views = [train_items] + [mirrored_items(train_items, v) for v in range(1, config.train_views)]
    train_emb = [embed_items(backbone, items, cache, device, log) for items in train_views]
    val_emb = embed_items(backbone, val_items, cache, device, log)
    embed_seconds = time.perf_counter() - started

    with deterministic(device):
        result = _fit(request, config, device, backbone, train_views, train_emb, val_items, val_emb, log,
                      init.tensors if init is not None else None)
    train_seconds = time.perf_counter() - started
    meta = {
        "format": CHECKPOINT_FORMAT,
        "engine": ENGINE_FAMILY,
        "title": TITLES.get(backbone.name, "Probabilistic SAM"),
        "dims": "2",
        "backbone": backbone.name,
        "backbone_sha256": backbone.sha256,
        "backbone_spec": backbone.name if backbone.spec in ("litemedsam", "tiny-random") else "",
        "backbone_file": backbone.source.name if backbone.source is not None else "",
        "config": config.to_json(),
        "command": request.command,
        "init": f"{init.path.name} ({init.digest})" if init is not None else "",
        "seed": str(request.seed),
        "epochs": str(config.epochs),
        "best_epoch": str(result["best_epoch"]),
        "val_ged": f"{result['val_ged']:.4f}",
        "fp16_check": json.dumps(result["fp16_check"]),
        "history": json.dumps(result["history"]),
        "stopped_early": "no" if result["stopped_after_epoch"] is None else f"after epoch {result['stopped_after_epoch']}",
        "train_items": str(len(train_items)),
        "val_items": str(len(val_items)),
        "embed_seconds": f"{embed_seconds:.0f}",
        "train_seconds": f"{train_seconds:.0f}",
        "device": str(device),
        "torch": torch.__version__,
        "data": ATTRIBUTION,
    }
    save_checkpoint(out, result["tensors"], meta)
    size_mb = out.stat().st_size / 1e6
    log(f"wrote {out} ({size_mb:.1f} MB): best epoch {result['best_epoch']}, validation GED {result['val_ged']:.4f}, "
        f"{train_seconds / 60:.1f} min in all ({embed_seconds / 60:.1f} min embeddings)")
    return {"out": str(out), "size_mb": round(size_mb, 2), "best_epoch": result["best_epoch"],
            "val_ged": result["val_ged"], "train_seconds": round(train_seconds, 1),
            "embed_seconds": round(embed_seconds, 1), "fp16_check": result["fp16_check"],
            "history": result["history"]}


@dataclass
class InitCheckpoint:
    """A checkpoint to start training from (`--init`)."""

    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict[str, str]
    config: ProbSamConfig
    digest: str


def read_init(path: Path) -> InitCheckpoint:
    tensors, meta = read_checkpoint(path, CHECKPOINT_FORMAT, "a Probabilistic SAM checkpoint")
    return InitCheckpoint(path, tensors, meta, ProbSamConfig.from_json(meta.get("config", "{}")),
                          short_digest(file_sha256(path)))


ARCHITECTURE = ("latent_dim", "z_inject", "latent_input", "crop_size")  # fixed by an --init checkpoint


def _config(request: TrainRequest, base: ProbSamConfig | None = None) -> ProbSamConfig:
    """Defaults (or the --init checkpoint's settings, `base`) with the request's options applied and checked."""
    config = replace(base) if base is not None else ProbSamConfig()
    types = {f.name: f.type for f in fields(ProbSamConfig)}
    for key, raw in request.options.items():
        if key not in types or key == "crop_size":
            settable = ", ".join(k for k in types if k != "crop_size")
            raise ModelError(f"unknown option {key!r} for probsam (settable: {settable})")
        if types[key] in ("str", str):
            value = raw
        else:
            try:
                value = float(raw) if types[key] in ("float", float) else int(raw)
            except ValueError as exc:
                raise ModelError(f"option {key}={raw!r} is not a number") from exc
        if base is not None and key in ARCHITECTURE and value != getattr(base, key):
            raise ModelError(f"option {key}={raw}: the --init checkpoint was trained with {key}="
                             f"{getattr(base, key)}, and a fine-tuning run keeps its architecture")
        setattr(config, key, value)
    if request.epochs is not None:
        config.epochs = request.epochs
    if config.epochs < 1 or config.val_every < 1 or config.val_samples < 1 or not 0 <= config.point_prob <= 1:
        raise ModelError("epochs, val_every and val_samples must be >= 1 and point_prob in [0, 1]")
    if config.box_source not in ("rater", "consensus"):
        raise ModelError(f"box_source must be 'rater' or 'consensus', got {config.box_source!r}")
    if config.latent_input not in LATENT_INPUTS:
        raise ModelError(f"latent_input must be one of {', '.join(LATENT_INPUTS)}, got {config.latent_input!r}")
    if config.z_inject not in Z_INJECT:
        raise ModelError(f"z_inject must be one of {', '.join(Z_INJECT)}, got {config.z_inject!r}")
    if not config.lr_new >= 0:
        raise ModelError(f"lr_new must be >= 0 (0: the same as lr), got {config.lr_new}")
    if not config.free_bits >= 0:
        raise ModelError(f"free_bits must be >= 0 nats, got {config.free_bits}")
    if not 0 <= config.ema < 1:
        raise ModelError(f"ema must be in [0, 1) (0: off), got {config.ema}")
    if not config.temperature > 0:
        raise ModelError(f"temperature must be > 0, got {config.temperature}")
    checked_draws(config.draws)
    if not config.energy_weight >= 0 or config.energy_samples < 2:
        raise ModelError(f"energy_weight must be >= 0 and energy_samples >= 2 (its spread term needs two), got "
                         f"{config.energy_weight} and {config.energy_samples}")
    if config.energy_as_sampled not in (0, 1):
        raise ModelError(f"energy_as_sampled must be 0 (the prior at temperature 1, the box as given) or 1 (as the "
                         f"engine samples), got {config.energy_as_sampled}")
    checked_views(config.train_views, "train_views")
    if config.energy_binary not in (0, 1):
        raise ModelError(f"energy_binary must be 0 (soft hypotheses) or 1 (thresholded at 0.5), got "
                         f"{config.energy_binary}")
    return config


@contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic algorithms for the duration (strict on the CPU, best effort on a GPU); restored afterwards."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def embed_items(backbone: Backbone, items: list[LidcItem], cache: EmbeddingCache, device: torch.device,
                log: Callable[[str], None]) -> list[torch.Tensor]:
    """float16 embeddings (C, h, w) of every crop, from the disk cache or computed (the encoder runs once per crop)."""
    out: list[torch.Tensor] = []
    computed = 0
    started = time.perf_counter()
    for i, item in enumerate(items):
        key = cache.key(item.scan, backbone.sha256)
        emb = cache.get(key)
        if emb is None:
            fresh = backbone.encode(torch.from_numpy(item.scan).to(device))[0].float().cpu().numpy()
            emb = cache.put(key, fresh)
            computed += 1
            if computed % 50 == 0:
                rate = (time.perf_counter() - started) / computed
                log(f"  embeddings: {i + 1}/{len(items)} ({rate:.2f} s per crop)")
        out.append(torch.from_numpy(emb))
    if computed:
        log(f"  embeddings: computed {computed}, cached {len(items) - computed}, "
            f"{time.perf_counter() - started:.0f} s")
    return out


def mirrored_items(items: list[LidcItem], view: int) -> list[LidcItem]:
    """The crops, their raters' masks and consensus in mirrored view `view` (mirror_views.FLIPS)."""
    return [replace(item, scan=flip(item.scan, view), raters=flip(item.raters, view), gt=flip(item.gt, view))
            for item in items]


def training_prompt(item: LidcItem, mask: np.ndarray, rng: np.random.Generator, config: ProbSamConfig
                    ) -> ModelPrompts:
    """The prompt of one training step for the drawn rater's `mask`.

    The box of the prompt source (the rater's own mask, or the consensus); with probability point_prob and a
    non-empty source, 1-3 positive points inside it instead.
    """
    source = mask if config.box_source == "rater" else item.gt
    if config.point_prob > 0 and source.any() and rng.random() < config.point_prob:
        ys, xs = np.nonzero(source)
        k = int(rng.integers(1, min(config.max_points, ys.size) + 1))
        chosen = rng.choice(ys.size, size=k, replace=False)
        return ModelPrompts(points=[(float(ys[j]), float(xs[j]), True) for j in chosen])
    return ModelPrompts(box=box_of_mask(source))


def _fit(request: TrainRequest, config: ProbSamConfig, device: torch.device, backbone: Backbone,
         train_views: list[list[LidcItem]], train_emb: list[list[torch.Tensor]], val_items: list[LidcItem],
         val_emb: list[torch.Tensor], log: Callable[[str], None],
         init_tensors: dict[str, torch.Tensor] | None = None) -> dict:
    """Train; `train_views[v]` / `train_emb[v]` are the training crops and their embeddings in mirrored view v."""
    train_items = train_views[0]
    torch.manual_seed(request.seed)
    rng = np.random.default_rng(request.seed)
    noise = torch.Generator(device="cpu").manual_seed(request.seed + 1)
    reference = backbone_reference(backbone)
    model = ProbSam(backbone, config.latent_dim, config.z_inject, config.latent_input).to(device)
    if init_tensors is not None:
        apply_checkpoint_tensors(model, init_tensors, str(request.init))
    new = [p for name, p in model.named_parameters() if name.startswith(("prior.", "posterior.", "z_proj.", "z_dense."))]
    new_ids = {id(p) for p in new}
    rest = [p for p in model.parameters() if id(p) not in new_ids]
    optimizer = torch.optim.Adam([{"params": rest}, {"params": new, "lr": config.lr_new or config.lr}], lr=config.lr)
    engine = ProbSamEngine(model=model, name="validation", device=device, temperature=config.temperature,
                           box_margin=config.box_margin, draws=config.draws, box_jitter=config.box_jitter)
    history: list[dict] = []
    best: dict = {"ged": math.inf}
    steps_total = config.epochs * len(train_items)
    step = 0
    average = WeightAverage(model, config.ema) if config.ema > 0 else None
    fit_started = time.perf_counter()
    with epochs_until_stopped(history, log) as stopped:
        for epoch in range(1, config.epochs + 1):
            model.train()
            sums = np.zeros(3)
            for index in rng.permutation(len(train_items)):
                # One view draw only when there are views to draw from: one-view runs keep the random stream (and
                # so the weights) they had before the option existed.
                view = int(rng.integers(len(train_views))) if len(train_views) > 1 else 0
                item = train_views[view][index]
                mask = item.raters[rng.integers(item.raters.shape[0])]
                prompt = training_prompt(item, mask, rng, config)
                loss, recon, kl = _step(model, optimizer, item, train_emb[view][index], mask, prompt, noise, config,
                                        device)
                sums += (loss, recon, kl)
                step += 1
                if average is not None:
                    average.update(model, step)
                if step % 100 == 0 or step == steps_total:
                    elapsed = time.perf_counter() - fit_started
                    done = step / steps_total
                    log(f"  epoch {epoch} step {step}/{steps_total}: loss {sums[0] / max(1, step - (epoch - 1) * len(train_items)):.4f} "
                        f"({elapsed / 60:.1f} min, eta {elapsed * (1 - done) / max(done, 1e-9) / 60:.1f} min)")
            n = len(train_items)
            record = {"epoch": epoch, "loss": round(sums[0] / n, 4), "recon": round(sums[1] / n, 4),
                      "kl": round(sums[2] / n, 4), "minutes": round((time.perf_counter() - fit_started) / 60, 1)}
            if epoch % config.val_every == 0 or epoch == config.epochs:
                # Validate the weights as they will be shipped (the average when on; backbone + float16 deltas),
                # then train on exactly.
                exact = _copy_state(model)
                if average is not None:
                    model.load_state_dict(average.state(), strict=False)
                kept = _copy_state(model)
                tensors = checkpoint_tensors(model, reference, half=True)
                _load_rounded(model, reference, tensors)
                ged, _ = validate(engine, val_items, val_emb, config.val_samples)
                model.load_state_dict(exact)
                model.train()
                record["val_ged"] = round(ged, 4)
                if ged < best["ged"]:
                    best = {"ged": ged, "epoch": epoch, "tensors": tensors, "exact": kept}
            history.append(record)
            log(f"epoch {epoch}: " + ", ".join(f"{k} {v}" for k, v in record.items() if k != "epoch"))
    stopped_after = stopped.after
    if "tensors" not in best:
        raise ModelError("stopped before the first validation, or its GED was never finite: no epoch to keep")

    # What storing the deltas in float16 changes, on the first validation crops: exact vs rounded weights.
    subset = slice(0, min(16, len(val_items)))
    model.load_state_dict(best["exact"])
    ged_exact, probs_exact = validate(engine, val_items[subset], val_emb[subset], config.val_samples)
    _load_rounded(model, reference, best["tensors"])
    ged_half, probs_half = validate(engine, val_items[subset], val_emb[subset], config.val_samples)
    max_diff = float(np.max(np.abs(probs_half - probs_exact)))
    log(f"best epoch {best['epoch']}: validation GED {best['ged']:.4f}; float16 deltas on {len(probs_half)} crops: "
        f"GED {ged_exact:.4f} exact vs {ged_half:.4f} rounded, max |p difference| {max_diff:.1e}")
    return {"tensors": best["tensors"], "best_epoch": best["epoch"], "val_ged": best["ged"],
            "fp16_check": {"crops": len(probs_half), "ged_exact": round(ged_exact, 5), "ged_fp16": round(ged_half, 5),
                           "max_abs_prob_diff": float(f"{max_diff:.2e}")},
            "history": history, "stopped_after_epoch": stopped_after}


class WeightAverage:
    """Exponential moving average of the model's floating-point tensors (torch.optim.swa_utils.AveragedModel would
    deep-copy the frozen image encoder too, which for SAM ViT-H is 2.5 GB; the state dict here holds only what trains)."""

    def __init__(self, model: ProbSam, decay: float) -> None:
        self.decay = decay
        self.values = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: ProbSam, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        current = model.state_dict()
        for key, value in self.values.items():
            value.lerp_(current[key], 1 - decay)

    def state(self) -> dict[str, torch.Tensor]:
        return self.values


def _copy_state(model: ProbSam) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _load_rounded(model: ProbSam, reference: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> None:
    """Set the model to what a checkpoint with these tensors loads to: pretrained + float16 delta, new nets."""
    with torch.no_grad():
        state = model.state_dict()
        for name, value in tensors.items():
            if name.startswith(DELTA):
                key = name[len(DELTA):]
                state[key].copy_(reference[key].to(state[key].device) + value.float().to(state[key].device))
            else:
                state[name[len(NEW):]].copy_(value)


def _step(model: ProbSam, optimizer: torch.optim.Optimizer, item: LidcItem, embedding: torch.Tensor,
          mask: np.ndarray, prompt: ModelPrompts, noise: torch.Generator, config: ProbSamConfig,
          device: torch.device) -> tuple[float, float, float]:
    shape = item.scan.shape
    crop = torch.from_numpy(item.scan).to(device)[None, None]
    target = torch.from_numpy(mask).to(device, torch.float32)[None, None]
    embedding = embedding.to(device, torch.float32)[None]
    mu_p, ls_p = model.prior_gaussian(crop, embedding, prompt)
    mu_q, ls_q = model.posterior_gaussian(crop, embedding, prompt, target)
    eps = torch.randn(1, config.latent_dim, generator=noise).to(device)
    z = mu_q + torch.exp(ls_q) * eps
    sparse, dense = model.embed_prompts([prompt], shape)
    logits = model.decode(embedding, sparse, dense, z, shape)
    kl_dims = kl_diag_gaussians(mu_q, ls_q, mu_p, ls_p, per_dim=True)
    loss, recon = training_loss(logits, target, free_bits_kl(kl_dims, config.free_bits), config.beta)
    if config.energy_weight > 0:
        hypotheses = energy_hypotheses(model, embedding, prompt, sparse, dense, mu_p, ls_p, noise, config, device,
                                       shape)
        raters = torch.from_numpy(item.raters).to(device, torch.float32)
        loss = loss + config.energy_weight * soft_energy_score(hypotheses.flatten(1), raters.flatten(1))
    kl = kl_dims.sum(dim=-1)  # the true KL, logged
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), recon.item(), kl.mean().item()


def energy_hypotheses(model: ProbSam, embedding: torch.Tensor, prompt: ModelPrompts, sparse: torch.Tensor,
                      dense: torch.Tensor, mu_p: torch.Tensor, ls_p: torch.Tensor, noise: torch.Generator,
                      config: ProbSamConfig, device: torch.device, shape: tuple[int, int]) -> torch.Tensor:
    """The energy score's `energy_samples` hypotheses (K, 1, H, W) in [0, 1], drawn from the prior with the
    training noise; with `energy_as_sampled` at the sampling temperature, each reading its own jittered box, and
    box-bounded, as ProbSamEngine.sample draws them (iid eps, not Sobol: a training step needs no even cover)."""
    k = config.energy_samples
    matched = bool(config.energy_as_sampled)
    scale = config.temperature if matched else 1.0
    z_prior = mu_p + scale * torch.exp(ls_p) * torch.randn(k, config.latent_dim, generator=noise).to(device)
    boxed = matched and prompt.box is not None
    if boxed and config.box_jitter > 0:
        eps = torch.randn(k, 4, generator=noise).double().numpy()
        sparse, dense = model.embed_prompts(prompts_per_box(prompt, moved_boxes(prompt.box, config.box_jitter * eps)),
                                            shape)
    else:
        sparse, dense = sparse.expand(k, -1, -1), dense.expand(k, -1, -1, -1)
    hypotheses = torch.sigmoid(model.decode(embedding.expand(k, -1, -1, -1), sparse, dense, z_prior, shape))
    if config.energy_binary:
        hypotheses = straight_through_threshold(hypotheses)
    if boxed and config.box_margin >= 0:
        hypotheses = hypotheses * torch.from_numpy(box_support(prompt.box, shape, config.box_margin)).to(device)
    return hypotheses


def straight_through_threshold(probs: torch.Tensor) -> torch.Tensor:
    """The masks thresholded at 0.5 in the forward pass, the identity's gradient in the backward pass."""
    return probs + ((probs > 0.5).to(probs.dtype) - probs).detach()


def soft_iou_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, P) and (B, P) masks in [0, 1] -> (A, B) distances 1 - (|a b| + 1) / (|a| + |b| - |a b| + 1): 1 - IoU,
    soft and smoothed by one pixel so that two empty masks are at distance 0 (IoU(0, 0) = 1, as in GED)."""
    inter = a @ b.T
    union = a.sum(dim=1)[:, None] + b.sum(dim=1)[None, :] - inter
    return 1 - (inter + 1) / (union + 1)


def soft_energy_score(hypotheses: torch.Tensor, raters: torch.Tensor) -> torch.Tensor:
    """E d(S, Y) - 1/2 E d(S, S') for K >= 2 hypotheses (K, P) and R raters (R, P), distinct hypothesis pairs only
    (the unbiased estimate); lower is better.  With binary masks and no smoothing it is (GED + E d(Y, Y')) / 2 with
    GED's S-S' term over distinct pairs."""
    k = hypotheses.shape[0]
    spread = soft_iou_distance(hypotheses, hypotheses)
    distinct = spread.sum() - spread.diagonal().sum()  # a soft mask is not at distance 0 from itself
    return soft_iou_distance(hypotheses, raters).mean() - 0.5 * distinct / (k * (k - 1))


def validate(engine: ProbSamEngine, items: list[LidcItem], embeddings: list[torch.Tensor], n: int
             ) -> tuple[float, np.ndarray]:
    """Mean GED of n prior samples (box of the consensus mask, seed = item index) against the raters."""
    geds = []
    all_probs = []
    for i, (item, emb) in enumerate(zip(items, embeddings)):
        state = engine.state_from_embedding(item.scan, emb)
        probs = engine.sample(state, ModelPrompts(box=box_of_mask(item.gt)), n, seed=i)
        geds.append(ged(probs > 0.5, item.raters))
        all_probs.append(probs)
    return float(np.mean(geds)), np.stack(all_probs)
