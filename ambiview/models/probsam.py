"""Probabilistic SAM (Ward et al., arXiv 2509.05809) on a pretrained SAM-family backbone, and its Engine.

As in the authors' code (github.com/tbwa233/Probabilistic-SAM): the image encoder is frozen; the prompt goes through
SAM's prompt encoder; a latent z (dim 6) comes from a prior net p(z | image) — in training from a posterior
q(z | image, mask) — small conv nets giving diagonal Gaussians with log-sigma clamped to [-5, 5]; z -> MLP(6, 256, 256)
is added to every sparse prompt token; SAM's mask decoder with a single output gives the mask.

Ours (see models/probsam-litemedsam.md): the training box can come from the consensus mask instead of the drawn
rater's mask (`box_source`); the prior/posterior see the 64x64 crop min-max scaled to [0, 1] (one channel, not the
upsampled 3-channel copy); logits are averaged down to the crop grid (4x4 cells for 256 -> 64) and the loss is taken
there; point prompts are accepted (trained by replacing the box by 1-3 points on a fraction of the steps); sampling
runs the encoder once and decodes all hypotheses from one embedding, in batches.  Options of ProbSamConfig, off by
default: z also into the dense embedding (`z_inject`), free bits, a learning rate of its own for the new nets, a
sampling temperature, scrambled-Sobol draws of the hypotheses' eps (`draws`), an energy score (`energy_weight`), and
prior/posterior nets on the encoder's embedding and the prompt (`latent_input`), a box prompt read with jittered edges
by each hypothesis (`box_jitter`); on by default: the box bound (`box_margin`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    Cancel,
    Engine,
    ModelError,
    ModelPrompts,
    OnSample,
    box_support,
    default_precision,
    draw_in_batches,
    file_sha256,
    is_out_of_memory,
    read_checkpoint,
    select_device,
    short_digest,
    write_bytes_atomic,
)
from ..paths import models_dir
from .embedding_cache import EmbeddingCache
from .mirror_views import checked_views, flip, flip_prompts
from .sam_backbone import Backbone, load_backbone

log = logging.getLogger(__name__)

ENGINE_FAMILY = "probsam"
CHECKPOINT_FORMAT = "ambiview-probsam/1"
LATENT_INPUTS = ("image", "embedding+prompt")
Z_INJECT = ("tokens", "tokens+dense")
DRAWS = ("iid", "sobol")  # ProbSamConfig.draws
DELTA = "delta."  # trained minus pretrained backbone tensor (prompt encoder, mask decoder)
NEW = "net."  # networks that do not exist in the backbone (prior, posterior, z projection)


@dataclass
class ProbSamConfig:
    """Model and training hyper-parameters stored with every checkpoint."""

    latent_dim: int = 6
    beta: float = 10.0
    # Where z enters the decoder: "tokens" = added to every sparse prompt token (the authors' code); "tokens+dense" =
    # also added, through a zero-initialised linear map, to the dense prompt embedding at every image position (ours,
    # as the Probabilistic U-Net tiles z over the feature map), so z can reach the mask without the tokens' attention.
    z_inject: str = "tokens"
    # Free bits (Kingma et al. 2016): each latent dimension's KL counts as at least this many nats, so the posterior
    # can carry that much information at no cost (ours; 0 = the paper's plain KL).
    free_bits: float = 0.0
    # Learning rate of the new networks (prior, posterior, z maps); 0 = `lr` like the rest (the paper: one lr).  Ours.
    lr_new: float = 0.0
    lr: float = 1e-4
    epochs: int = 10  # batch size 1 as in the paper: on the CPU a larger batch costs the same per item (measured)
    # Where the training prompt comes from: "rater" = the drawn rater's own mask (the authors' code), "consensus" =
    # the crop's consensus mask, the same prompt for every rater, as at evaluation and in the app (ours).
    box_source: str = "consensus"
    point_prob: float = 0.2  # fraction of training steps whose box is replaced by 1-3 positive points (ours)
    max_points: int = 3
    val_every: int = 2
    val_samples: int = 16
    crop_size: int = 64
    # Exponential moving average of the trained weights (ours; 0 = off, the paper): validation, selection and the
    # checkpoint use the average, which smooths the batch-1 updates' step-to-step noise.  Early steps use
    # min(ema, (1 + step) / (10 + step)) so the average is not dominated by the untrained start.
    ema: float = 0.0
    # Sampling temperature: hypotheses draw z = mu + temperature * sigma * eps from the prior (ours; 1 = the paper).
    # Above 1 the hypotheses spread more along the directions the model learned (swept by
    # benchmarks/probsam_temperature.py on `train`; the shipped checkpoint stores 1.3, its card says why).
    temperature: float = 1.0
    # How the n hypotheses' eps are drawn (ours; "iid" = the paper): "sobol" takes them from a scrambled Sobol
    # sequence (Owen 1998) through the normal quantile, seeded like the iid draws.  Each hypothesis is still a draw
    # from the prior, but the n of them cover it evenly instead of clumping, so 16 hypotheses show more of what the
    # model holds possible.  Hypothesis i does not depend on n (the sequence's first n points).
    draws: str = "iid"
    # Box bound (ours; negative = none, the paper): with a box prompt, a hypothesis is zero outside the box grown by
    # this many crop pixels, because a box says where the object is.  The decoder sees the box only as two prompt
    # tokens, and a warm z can carry a hypothesis along vessels far outside it.  5 px was chosen on `train`
    # (benchmarks/box_bound.py): 0.17 % of the raters' foreground lies outside the consensus box + 5 and 0.9 % outside
    # one rater's box + 5; cutting it would cost the raters themselves 0.0003 and 0.0025 GED.  Points: no bound.
    box_margin: float = 5.0
    # Box jitter (ours; 0 = off, the paper): with a box prompt, hypothesis i reads the box with each edge moved by
    # box_jitter * eps crop pixels (eps standard normal, its own of each hypothesis, drawn like `draws`), as raters'
    # own boxes differ from the consensus box (by 1.5 px per edge on `train`; benchmarks/probsam_temperature.py
    # --box-jitters).  The hypotheses then also differ in how far the lesion reaches, as raters' masks do; it
    # costs nothing (the prompt encoder is tiny) and the box bound stays on the box as given.
    box_jitter: float = 0.0
    # What the prior and posterior nets see: "image" = the 64x64 crop min-max scaled (the authors' code: two 3x3 convs,
    # so 5x5 pixels, then a global average); "embedding+prompt" = the frozen encoder's embedding, a map of the prompt
    # (the box filled, or the points) and, for the posterior, the rater's mask, through two stride-2 convs, so that
    # the prior knows which object was asked for and how it looks (ours; the prior is then conditioned on the prompt).
    latent_input: str = "image"
    # Energy score (ours; 0 = off, the paper): on every training step also draw `energy_samples` hypotheses from the
    # prior and add energy_weight * [E d(S, Y) - 1/2 E d(S, S')] over all of the crop's raters Y, d = 1 - soft IoU.
    # This is GED's own form (a proper scoring rule, Gneiting & Raftery 2007), so the prior's samples are trained to
    # spread the way the raters do; the paper's loss sees one rater through the posterior only.
    energy_weight: float = 0.0
    energy_samples: int = 4
    # 1: score the hypotheses as GED sees them, thresholded at 0.5, with the gradient passed straight through to the
    # probabilities (Bengio et al. 2013); the soft score is not proper for soft maps, which can hedge (ours).
    energy_binary: int = 0
    # 1: draw the energy score's hypotheses the way the engine samples (ours; 0 = the prior at temperature 1, the box
    # as given, unbounded): z at `temperature`, each hypothesis reading its own box jittered by `box_jitter`, and the
    # box bound `box_margin` applied, so the score trains the sampler the app runs, not a neighbour of it.
    energy_as_sampled: int = 0
    # Mirrored training views (ours; 1 = the crop as it is, the paper): each training step reads the crop, its raters'
    # masks and its prompt in one of the first `train_views` mirrored views of mirror_views.FLIPS, drawn at random --
    # data augmentation by flips, since the encoder is far from flip-equivariant and 570 crops are few.  Each view
    # costs one encoder pass per training crop (cached).  Validation and sampling read the crop as it is.
    train_views: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ProbSamConfig":
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# ----------------------------------------------------------------------------------------------------------- model


class LatentEncoder(nn.Module):
    """A feature net ending in a global average of 64 channels, then linear heads for mu and log-sigma (clamped to
    [-5, 5] as in the paper's nets)."""

    def __init__(self, features: nn.Module, latent_dim: int) -> None:
        super().__init__()
        self.features = features
        self.mu = nn.Linear(64, latent_dim)
        self.log_sigma = nn.Linear(64, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mu(h), torch.clamp(self.log_sigma(h), -5.0, 5.0)


def image_features(in_channels: int) -> nn.Sequential:
    """The paper's nets on the crop: Conv3x3 -> 32, ReLU, Conv3x3 -> 64, ReLU, global average."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def embedding_features(embed_dim: int, extra_channels: int) -> nn.Sequential:
    """Ours, on the encoder's embedding (C, h, w) + extra maps on its grid: 1x1 conv -> 64, two 3x3 stride-2 convs,
    global average."""
    return nn.Sequential(
        nn.Conv2d(embed_dim + extra_channels, 64, 1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def prompt_map(prompts: ModelPrompts, crop_hw: tuple[int, int]) -> torch.Tensor:
    """(1, 1, H, W) map of a prompt on the crop grid: 1 inside the box; +1 / -1 on the 3x3 pixels around each
    positive / negative point."""
    h, w = crop_hw
    out = torch.zeros(1, 1, h, w)
    if prompts.box is not None:
        y0, x0, y1, x1 = (int(round(float(v))) for v in prompts.box)
        out[..., max(0, y0):y1 + 1, max(0, x0):x1 + 1] = 1.0
    for y, x, positive in prompts.points or []:
        yi, xi = int(round(float(y))), int(round(float(x)))
        out[..., max(0, yi - 1):yi + 2, max(0, xi - 1):xi + 2] = 1.0 if positive else -1.0
    return out


class ProbSam(nn.Module):
    """The trainable part (prompt encoder, mask decoder, prior, posterior, z projection) around a frozen encoder.

    The backbone's image encoder is held but not registered, so `state_dict()` holds only trainable tensors.
    """

    def __init__(self, backbone: Backbone, latent_dim: int = 6, z_inject: str = "tokens",
                 latent_input: str = "image") -> None:
        super().__init__()
        self.backbone = backbone  # a plain dataclass: its encoder is not a submodule
        self.prompt_encoder = backbone.prompt_encoder
        self.mask_decoder = backbone.mask_decoder
        dim = backbone.embed_dim
        self.latent_dim = latent_dim
        if latent_input not in LATENT_INPUTS:
            raise ModelError(f"latent_input must be one of {', '.join(LATENT_INPUTS)}, got {latent_input!r}")
        self.latent_input = latent_input
        if latent_input == "image":
            self.prior = LatentEncoder(image_features(1), latent_dim)
            self.posterior = LatentEncoder(image_features(2), latent_dim)
        else:
            self.prior = LatentEncoder(embedding_features(dim, 1), latent_dim)
            self.posterior = LatentEncoder(embedding_features(dim, 2), latent_dim)
        self.z_proj = nn.Sequential(nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, dim))
        if z_inject not in Z_INJECT:
            raise ModelError(f"z_inject must be one of {', '.join(Z_INJECT)}, got {z_inject!r}")
        self.z_inject = z_inject
        if z_inject == "tokens+dense":
            # zero-initialised: training starts from exactly the paper's model
            self.z_dense = nn.Linear(latent_dim, dim)
            nn.init.zeros_(self.z_dense.weight)
            nn.init.zeros_(self.z_dense.bias)

    def _latent_input(self, crop: torch.Tensor, embedding: torch.Tensor, prompts: ModelPrompts,
                      mask: torch.Tensor | None) -> torch.Tensor:
        if self.latent_input == "image":
            parts = [minmax01(crop)] + ([mask] if mask is not None else [])
            return torch.cat(parts, dim=1)
        grid = embedding.shape[-2:]
        maps = [prompt_map(prompts, tuple(crop.shape[-2:])).to(embedding.device)]
        if mask is not None:
            maps.append(mask)
        maps = F.adaptive_avg_pool2d(torch.cat(maps, dim=1), grid)
        return torch.cat([embedding, maps.expand(embedding.shape[0], -1, -1, -1)], dim=1)

    def prior_gaussian(self, crop: torch.Tensor, embedding: torch.Tensor, prompts: ModelPrompts
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """p(z | crop) (the paper), or p(z | embedding, prompt) with latent_input "embedding+prompt".
        crop: (1, 1, H, W) standardised; embedding: (1, C, h, w)."""
        return self.prior(self._latent_input(crop, embedding, prompts, None))

    def posterior_gaussian(self, crop: torch.Tensor, embedding: torch.Tensor, prompts: ModelPrompts,
                           mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | crop, mask), or q(z | embedding, prompt, mask); mask (1, 1, H, W) on the crop grid."""
        return self.posterior(self._latent_input(crop, embedding, prompts, mask))

    @property
    def input_size(self) -> int:
        return self.backbone.input_size

    def embed_prompts(self, prompts: list[ModelPrompts], crop_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse (B, T, C) and dense prompt embeddings for prompts of one kind (all boxes, or equal point counts)."""
        device = next(self.prompt_encoder.parameters()).device
        sy = self.input_size / crop_hw[0]
        sx = self.input_size / crop_hw[1]
        boxes = None
        points = None
        if prompts[0].box is not None:
            boxes = torch.tensor([box_to_model(p.box, sy, sx) for p in prompts], dtype=torch.float32, device=device)
        if prompts[0].points:
            coords = torch.tensor([[point_to_model(y, x, sy, sx) for y, x, _ in p.points] for p in prompts],
                                  dtype=torch.float32, device=device)
            labels = torch.tensor([[1 if pos else 0 for _, _, pos in p.points] for p in prompts],
                                  dtype=torch.int64, device=device)
            points = (coords, labels)
        return self.prompt_encoder(points=points, boxes=boxes, masks=None)

    def decode(self, embedding: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor, z: torch.Tensor,
               crop_hw: tuple[int, int]) -> torch.Tensor:
        """Logits (B, 1, H, W) in the crop grid: z shifts every sparse token (and with z_inject "tokens+dense" the
        dense embedding at every position); low-res logits are area-averaged."""
        tokens = sparse + self.z_proj(z)[:, None, :]
        if self.z_inject == "tokens+dense":
            dense = dense + self.z_dense(z)[:, :, None, None]
        low_res, _ = self.mask_decoder(
            image_embeddings=embedding,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=tokens,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        return F.adaptive_avg_pool2d(low_res, crop_hw)


def minmax01(crops: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) crops scaled to [0, 1] each (input of the prior and posterior nets)."""
    lo = crops.amin(dim=(-2, -1), keepdim=True)
    hi = crops.amax(dim=(-2, -1), keepdim=True)
    return (crops - lo) / (hi - lo + 1e-8)


def box_to_model(box: tuple[float, float, float, float], sy: float, sx: float) -> tuple[float, float, float, float]:
    """Crop box (y0, x0, y1, x1), inclusive pixels -> SAM box (x0, y0, x1, y1) in the encoder's input pixels.

    Pixel i of the crop covers input pixels [i*s, (i+1)*s - 1]; this equals the bounding box of the mask after a
    nearest-neighbour upscaling, which is how the authors' code derives its box at the encoder's resolution.
    """
    y0, x0, y1, x1 = box
    return (x0 * sx, y0 * sy, (x1 + 1) * sx - 1, (y1 + 1) * sy - 1)


def point_to_model(y: float, x: float, sy: float, sx: float) -> tuple[float, float]:
    """Crop pixel (y, x) -> SAM point (x, y) at the same physical spot in the encoder's input pixels."""
    return ((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5)


def box_of_mask(mask: np.ndarray, fallback: float = 0.25) -> tuple[int, int, int, int]:
    """Inclusive bounding box (y0, x0, y1, x1) of a mask; the central box (25-75 %) when it is empty (as the authors)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        h, w = mask.shape
        return (int(h * (0.5 - fallback)), int(w * (0.5 - fallback)), int(h * (0.5 + fallback)),
                int(w * (0.5 + fallback)))
    return (int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max()))


def kl_diag_gaussians(mu_q: torch.Tensor, ls_q: torch.Tensor, mu_p: torch.Tensor, ls_p: torch.Tensor,
                      per_dim: bool = False) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians (log-sigma parametrised), summed over latent dims -> (B,) (or (B, latent))."""
    var_q, var_p = torch.exp(2 * ls_q), torch.exp(2 * ls_p)
    kl = ls_p - ls_q + (var_q + (mu_q - mu_p) ** 2) / (2 * var_p) - 0.5
    return kl if per_dim else kl.sum(dim=-1)


def free_bits_kl(kl_per_dim: torch.Tensor, free_bits: float) -> torch.Tensor:
    """(B, latent) per-dimension KL -> (B,) sum with each dimension counted as at least `free_bits` nats.

    Below the floor a dimension costs a constant, so its gradient is zero: the posterior may use it for free."""
    return torch.clamp(kl_per_dim, min=free_bits).sum(dim=-1) if free_bits > 0 else kl_per_dim.sum(dim=-1)


def training_loss(logits: torch.Tensor, target: torch.Tensor, kl: torch.Tensor, beta: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE-with-logits + soft Dice (smooth 1, over the batch) + beta * mean KL; returns (total, reconstruction)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
    recon = bce + dice
    return recon + beta * kl.mean(), recon


# ------------------------------------------------------------------------------------------------------ checkpoint


def backbone_reference(backbone: Backbone) -> dict[str, torch.Tensor]:
    """Copies of the pretrained prompt-encoder and mask-decoder tensors (the base the deltas are taken against)."""
    out = {}
    for prefix, module in (("prompt_encoder.", backbone.prompt_encoder), ("mask_decoder.", backbone.mask_decoder)):
        for key, value in module.state_dict().items():
            out[prefix + key] = value.detach().to("cpu", copy=True)
    return out


def checkpoint_tensors(model: ProbSam, reference: dict[str, torch.Tensor], half: bool = True) -> dict[str, torch.Tensor]:
    """What a checkpoint stores: deltas of the backbone tensors that changed (float16 when `half`) + the new nets."""
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        value = value.detach().to("cpu")
        if key in reference:
            delta = value.float() - reference[key].float()
            if torch.count_nonzero(delta) == 0:
                continue
            tensors[DELTA + key] = (delta.half() if half else delta).contiguous()
        else:
            tensors[NEW + key] = value.float().contiguous()
    return tensors


def apply_checkpoint_tensors(model: ProbSam, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load deltas and new nets into a model built on the pretrained backbone."""
    state = model.state_dict()
    new_keys = {k for k in state if not k.startswith(("prompt_encoder.", "mask_decoder."))}
    seen: set[str] = set()
    with torch.no_grad():
        for name, tensor in tensors.items():
            if name.startswith(DELTA):
                key = name[len(DELTA):]
            elif name.startswith(NEW):
                key = name[len(NEW):]
                seen.add(key)
            else:
                raise ModelError(f"{source}: unexpected tensor {name!r}")
            if key not in state or state[key].shape != tensor.shape:
                raise ModelError(f"{source}: tensor {name!r} does not fit the model (shape {tuple(tensor.shape)})")
            target = state[key]
            if name.startswith(DELTA):
                target.add_(tensor.to(target.device, torch.float32))
            else:
                target.copy_(tensor)
    missing = sorted(new_keys - seen)
    if missing:
        raise ModelError(f"{source}: checkpoint lacks {len(missing)} tensors of the new networks (e.g. {missing[0]})")


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file atomically."""
    from safetensors.torch import save

    write_bytes_atomic(Path(path), save(tensors, metadata={k: str(v) for k, v in metadata.items()}))


def save_with_temperature(path: Path, out: Path, temperature: float, note: str, draws: str | None = None,
                          box_jitter: float | None = None) -> None:
    """Copy a checkpoint with another sampling temperature (and, when given, another way of drawing, see
    ProbSamConfig.draws, and another box jitter) in its configuration; the tensors are unchanged and `note` (how
    they were chosen) is stored as the metadata `temperature_chosen`."""
    if not temperature > 0:
        raise ModelError(f"temperature must be > 0, got {temperature}")
    if draws is not None:
        checked_draws(draws)
    if box_jitter is not None:
        checked_box_jitter(box_jitter)
    tensors, meta = read_checkpoint(path, CHECKPOINT_FORMAT, "a Probabilistic SAM checkpoint")
    config = ProbSamConfig.from_json(meta.get("config", "{}"))
    config.temperature = float(temperature)
    if draws is not None:
        config.draws = draws
    if box_jitter is not None:
        config.box_jitter = float(box_jitter)
    save_checkpoint(out, tensors, {**meta, "config": config.to_json(), "temperature_chosen": note})


def sampling_note(meta: dict[str, str]) -> str:
    """How a checkpoint samples, for the model picker: its temperature, draws and box bound."""
    try:
        config = ProbSamConfig.from_json(meta.get("config", "{}"))
    except (ValueError, TypeError):
        return ""
    bound = f"box + {config.box_margin:g} px" if config.box_margin >= 0 else "no box bound"
    draws = " · Sobol draws" if config.draws == "sobol" else ""
    jitter = f" · box jitter {config.box_jitter:g} px" if config.box_jitter > 0 else ""
    return f"temperature {config.temperature:g}{draws} · {bound}{jitter}"


def load_model(path: Path, backbone_spec: str | None = None) -> tuple[ProbSam, dict[str, str]]:
    """Build the pretrained backbone named in the checkpoint (or `backbone_spec`), add the checkpoint; on the CPU."""
    tensors, meta = read_checkpoint(path, CHECKPOINT_FORMAT, "a Probabilistic SAM checkpoint")
    config = ProbSamConfig.from_json(meta.get("config", "{}"))
    spec = backbone_spec or stored_backbone_spec(meta, path)
    backbone = load_backbone(spec, expected_sha256=meta.get("backbone_sha256"))
    model = ProbSam(backbone, config.latent_dim, config.z_inject, config.latent_input)
    apply_checkpoint_tensors(model, tensors, str(path))
    model.eval()
    return model, meta


def stored_backbone_spec(meta: dict[str, str], path: Path) -> str:
    """The backbone a checkpoint was trained on: the bundled one by name, a user's weights file by its file name,
    looked up in the models folder and its `backbones/` subfolder (paths of the training machine are not stored)."""
    if meta.get("backbone_spec"):
        return meta["backbone_spec"]
    name, filename = meta.get("backbone", ""), meta.get("backbone_file", "")
    folders = [models_dir(), models_dir() / "backbones", path.parent]
    for folder in folders:
        if filename and (folder / filename).is_file():
            return f"{name}:{folder / filename}"
    raise ModelError(f"{path}: needs the {name} weights file {filename!r} it was trained on; put it into "
                     f"{models_dir() / 'backbones'}")


# ---------------------------------------------------------------------------------------------------------- engine


@dataclass
class ProbSamState:
    """What `prepare` computed for one crop: the (float16-rounded) embedding and the standardised crop (the prior
    is computed per request, as it may depend on the prompt)."""

    embedding: torch.Tensor  # (1, C, h, w)
    crop: torch.Tensor  # (1, 1, H, W)
    shape: tuple[int, int]
    key: str = ""

    def to(self, device: torch.device) -> "ProbSamState":
        return ProbSamState(self.embedding.to(device), self.crop.to(device), self.shape, self.key)


@dataclass(eq=False)
class ProbSamEngine(Engine):
    """Draws Probabilistic SAM hypotheses: the encoder runs once per crop, the hypotheses in batched decoder passes."""

    model: ProbSam
    name: str = "probsam"
    title: str = "Probabilistic SAM"
    checkpoint: Path | None = None
    digest: str = ""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    metadata: dict[str, str] = field(default_factory=dict)
    cache: EmbeddingCache | None = None
    batch_size: int = 0  # hypotheses per decoder pass after the first; 0: 4 on the CPU, all at once on a GPU
    # "bfloat16": the mask decoder under bfloat16 autocast (set from the device by `default_precision`: CPUs with
    # native bfloat16 units); the encoder, and so the cached embedding, stays float32
    precision: str = ""
    temperature: float = 1.0  # scale of the prior's sigma when sampling (ProbSamConfig.temperature)
    box_margin: float = 5.0  # hypotheses are zero outside a box prompt grown by this (ProbSamConfig.box_margin)
    views: int = 1  # hypothesis i on mirrored view i % views of the crop (mirror_views): one encoder pass a view
    draws: str = "iid"  # how the hypotheses' eps are drawn (ProbSamConfig.draws)
    box_jitter: float = 0.0  # crop pixels; hypothesis i reads a box prompt with jittered edges (ProbSamConfig)
    dims: int = 2
    accepts: frozenset[str] = frozenset({"box", "point"})
    default_samples: int = 16
    crop_size: int = 64

    def __post_init__(self) -> None:
        checked_draws(self.draws, self.name)
        checked_views(self.views, self.name)
        checked_box_jitter(self.box_jitter, self.name)
        self.model.eval()
        self._move(self.device)

    @classmethod
    def from_checkpoint(cls, path: Path, device: str | torch.device | None = None,
                        backbone_spec: str | None = None) -> "ProbSamEngine":
        """Load a checkpoint written by the trainer onto a device (None: CUDA when present, else CPU)."""
        path = Path(path)
        model, meta = load_model(path, backbone_spec)
        config = ProbSamConfig.from_json(meta.get("config", "{}"))
        return cls(model=model, name=path.stem, title=meta.get("title", "Probabilistic SAM"), checkpoint=path,
                   digest=short_digest(file_sha256(path)), device=select_device(device), metadata=meta,
                   cache=EmbeddingCache(), crop_size=config.crop_size, temperature=config.temperature,
                   box_margin=config.box_margin, draws=config.draws, box_jitter=config.box_jitter)

    def _move(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.model.to(self.device)
        self.model.backbone.image_encoder.to(self.device)
        self.precision = default_precision(self.device)

    def _fall_back_to_cpu(self, exc: BaseException) -> None:
        log.warning("%s: GPU out of memory (%s); continuing on the CPU", self.name, str(exc).splitlines()[0])
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self._move(torch.device("cpu"))

    # prepare ---------------------------------------------------------------------------------------------------

    def prepare(self, image: np.ndarray) -> ProbSamState:
        image = _check_image(image)
        try:
            return self._prepare(image)
        except Exception as exc:
            if self.device.type != "cuda" or not is_out_of_memory(exc):
                raise
            self._fall_back_to_cpu(exc)
            return self._prepare(image)

    def embed(self, image: np.ndarray) -> tuple[np.ndarray, str]:
        """The float16 encoder embedding (C, h, w) of a standardised crop, from the disk cache when there."""
        backbone = self.model.backbone
        key = self.cache.key(image, backbone.sha256) if self.cache else ""
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit, key
        with torch.inference_mode():
            emb = backbone.encode(torch.from_numpy(image).to(self.device))[0].float().cpu().numpy()
        if self.cache is not None:
            try:
                return self.cache.put(key, emb), key
            except OSError as exc:  # a full or read-only cache must not stop the segmentation
                log.warning("embedding cache not written (%s)", exc)
        return emb.astype(np.float16), key

    def _prepare(self, image: np.ndarray) -> ProbSamState:
        emb, key = self.embed(image)
        return self.state_from_embedding(image, emb, key)

    def state_from_embedding(self, image: np.ndarray, embedding: np.ndarray | torch.Tensor, key: str = ""
                             ) -> ProbSamState:
        """A state from a precomputed float16 embedding (C, h, w) (used by training validation and tests)."""
        emb = torch.as_tensor(embedding).to(self.device, torch.float32)[None]
        crop = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(self.device)[None, None]
        return ProbSamState(emb, crop, tuple(image.shape), key)

    # sample ----------------------------------------------------------------------------------------------------

    def sample(self, state: ProbSamState, prompts: ModelPrompts, n: int, seed: int,
               on_sample: OnSample | None = None, cancel: Cancel | None = None) -> np.ndarray:
        prompts = _check_prompts(prompts, state.shape)
        if n < 1:
            raise ModelError(f"number of hypotheses must be at least 1, got {n}")
        try:
            return self._sample(state, prompts, n, seed, on_sample, cancel)
        except Exception as exc:
            if self.device.type != "cuda" or not is_out_of_memory(exc):
                raise
            self._fall_back_to_cpu(exc)
            return self._sample(state, prompts, n, seed, on_sample, cancel)

    def prior(self, state: ProbSamState, prompts: ModelPrompts) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior's Gaussian (mu, log-sigma), each (1, latent), for this crop and prompt."""
        with torch.inference_mode():
            return self.model.prior_gaussian(state.crop, state.embedding, prompts)

    def latents(self, state: ProbSamState, prompts: ModelPrompts, n: int, seed: int) -> torch.Tensor:
        """n prior samples (n, latent) at the engine's temperature; eps drawn on the CPU so hypothesis i does not
        depend on n or device."""
        mu, log_sigma = self.prior(state, prompts)
        eps = standard_normal_draws(n, self.model.latent_dim, seed, self.draws).to(mu.device)
        return mu + self.temperature * torch.exp(log_sigma) * eps

    def _sample(self, state: ProbSamState, prompts: ModelPrompts, n: int, seed: int,
                on_sample: OnSample | None, cancel: Cancel | None) -> np.ndarray:
        if state.embedding.device != self.device:
            state = state.to(self.device)
        looks: dict[int, tuple[ProbSamState, ModelPrompts, torch.Tensor]] = {}

        def look(view: int) -> tuple[ProbSamState, ModelPrompts, torch.Tensor]:
            # made when the view's first hypothesis is due, so the first hypothesis waits for no other view's encoder
            if view not in looks:
                view_state = self.view_state(state, view)
                view_prompts = flip_prompts(prompts, state.shape, view)
                with torch.inference_mode():
                    looks[view] = (view_state, view_prompts, self.latents(view_state, view_prompts, n, seed))
            return looks[view]

        return self._decode(state.shape, prompts, n, min(self.views, n), look, on_sample, cancel,
                            self.hypothesis_prompts(prompts, n, seed))

    def hypothesis_prompts(self, prompts: ModelPrompts, n: int, seed: int) -> list[ModelPrompts] | None:
        """Each hypothesis's own prompts when the box is jittered (ProbSamConfig.box_jitter), else None (all read
        the prompts as given).  Hypothesis i's box does not depend on n; the points are kept."""
        if self.box_jitter <= 0 or prompts.box is None:
            return None
        return prompts_per_box(prompts, jittered_boxes(prompts.box, n, seed, self.box_jitter, self.draws))

    def view_state(self, state: ProbSamState, view: int) -> ProbSamState:
        """The state of mirrored view `view` of the prepared crop (`mirror_views`): one more encoder pass, or the
        disk cache; view 0 is the crop as it is."""
        if view == 0:
            return state
        image = flip(state.crop[0, 0].float().cpu().numpy(), view)
        embedding, key = self.embed(image)
        return self.state_from_embedding(image, embedding, key)

    def decode_latents(self, state: ProbSamState, prompts: ModelPrompts, z: torch.Tensor) -> np.ndarray:
        """(n, H, W) hypotheses for given latents z (n, latent) (`latents` draws them) on the crop as it is (one
        view), the prompts read as given (no box jitter), box-bounded."""
        if state.embedding.device != self.device:
            state = state.to(self.device)
        prompts = _check_prompts(prompts, state.shape)
        z = z.to(self.device)
        return self._decode(state.shape, prompts, z.shape[0], 1, lambda view: (state, prompts, z), None, None)

    def _decode(self, shape: tuple[int, int], prompts: ModelPrompts, n: int, views: int,
                look: Callable[[int], tuple[ProbSamState, ModelPrompts, torch.Tensor]],
                on_sample: OnSample | None, cancel: Cancel | None,
                per_hypothesis: list[ModelPrompts] | None = None) -> np.ndarray:
        """Hypothesis i decoded on view i % views: `look(view)` gives that view's state, prompts and latents (one
        row per hypothesis), and the result is flipped back onto the crop.  `per_hypothesis` (crop coordinates, one
        per hypothesis) replaces the prompts of each row; the box bound stays on `prompts`."""
        batch = self.batch_size or (4 if self.device.type == "cpu" else n)
        support = None
        if prompts.box is not None and self.box_margin >= 0:
            support = box_support(prompts.box, shape, self.box_margin)
        embedded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        with torch.inference_mode():

            def draw(start: int, k: int) -> np.ndarray:
                out = np.empty((k, *shape), np.float32)
                for view in range(views):
                    rows = [i for i in range(start, start + k) if i % views == view]
                    if not rows:
                        continue
                    view_state, view_prompts, z = look(view)
                    if per_hypothesis is not None:
                        sparse, dense = self.model.embed_prompts(
                            [flip_prompts(per_hypothesis[i], shape, view) for i in rows], shape)
                    else:
                        if view not in embedded:
                            embedded[view] = self.model.embed_prompts([view_prompts], shape)
                        sparse, dense = embedded[view]
                        sparse = sparse.expand(len(rows), -1, -1)
                    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
                        logits = self.model.decode(view_state.embedding, sparse, dense, z[rows], shape)
                    # probabilities from float32 logits, not bfloat16 ones
                    probs = torch.sigmoid(logits[:, 0].float()).cpu().numpy()
                    out[[i - start for i in rows]] = flip(probs, view)
                return out * support if support is not None else out

            return draw_in_batches(n, shape, batch, draw, on_sample, cancel)


def standard_normal_draws(n: int, dim: int, seed: int, draws: str = "iid") -> torch.Tensor:
    """(n, dim) standard normal eps, the first k rows the same for any n >= k: "iid" one row at a time from a
    seeded generator; "sobol" the first n points of a scrambled Sobol sequence through the normal quantile."""
    if checked_draws(draws) == "iid":
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        return torch.stack([torch.randn(dim, generator=gen) for _ in range(n)])
    u = torch.quasirandom.SobolEngine(dim, scramble=True, seed=int(seed)).draw(n, dtype=torch.float64)
    # a scrambled point can sit on 0 exactly; keep the quantile finite
    return torch.special.ndtri(u.clamp(1e-7, 1.0 - 1e-7)).float()


# Hypothesis i's box jitter comes from its own stream: the seed shifted by this, so it is not the latent's eps.
BOX_JITTER_SEED_OFFSET = 7919


def jittered_boxes(box: tuple[float, float, float, float], n: int, seed: int, sigma: float, draws: str = "iid"
                   ) -> list[tuple[float, float, float, float]]:
    """n boxes (y0, x0, y1, x1), each edge of `box` moved by sigma * eps (crop pixels; eps standard normal, drawn
    like the latents' but from another stream, `moved_boxes`); hypothesis i's box ignores n."""
    eps = standard_normal_draws(n, 4, int(seed) + BOX_JITTER_SEED_OFFSET, draws).double().numpy()
    return moved_boxes(box, sigma * eps)


def moved_boxes(box: tuple[float, float, float, float], offsets: np.ndarray) -> list[tuple[float, float, float, float]]:
    """One box per row of `offsets` (k, 4): the edges (y0, x0, y1, x1) of `box` moved by that row (crop pixels).
    An edge pair that crosses meets at its middle (a box of one pixel row or column)."""
    out = []
    for y0, x0, y1, x1 in np.asarray(box, np.float64)[None] + np.asarray(offsets, np.float64):
        if y1 < y0:
            y0 = y1 = (y0 + y1) / 2
        if x1 < x0:
            x0 = x1 = (x0 + x1) / 2
        out.append((float(y0), float(x0), float(y1), float(x1)))
    return out


def prompts_per_box(prompts: ModelPrompts, boxes: list[tuple[float, float, float, float]]) -> list[ModelPrompts]:
    """One copy of `prompts` per box, that box in place of its own and the points kept."""
    return [ModelPrompts(box=box, points=list(prompts.points)) for box in boxes]


def checked_box_jitter(sigma: Any, where: str = "") -> float:
    """`sigma` as a float when it is a finite number >= 0 (crop pixels), else ModelError (prefixed by `where`)."""
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        value = float("nan")
    if not (np.isfinite(value) and value >= 0):
        raise ModelError(f"{where + ': ' if where else ''}box jitter must be a number >= 0 (crop pixels), got {sigma!r}")
    return value


def checked_draws(draws: str, where: str = "") -> str:
    """`draws` when it is one of DRAWS, else ModelError (prefixed by `where`: the checkpoint's name)."""
    if draws not in DRAWS:
        raise ModelError(f"{where + ': ' if where else ''}unknown draws {draws!r} (use {' or '.join(DRAWS)})")
    return draws


def _check_image(image: Any) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 8:
        raise ModelError(f"expected a 2D crop (H, W) of at least 8x8 pixels, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.number):
        raise ModelError(f"expected a numeric crop, got dtype {image.dtype}")
    image = np.ascontiguousarray(image, dtype=np.float32)
    if not np.all(np.isfinite(image)):
        raise ModelError("the crop contains NaN or infinite values")
    return image


def _check_prompts(prompts: ModelPrompts, shape: tuple[int, int]) -> ModelPrompts:
    """Prompts clipped to the crop; ModelError for none at all or an inverted box."""
    if prompts is None or prompts.is_empty():
        raise ModelError("Probabilistic SAM needs a box or at least one point prompt")
    h, w = shape
    box = None
    if prompts.box is not None:
        y0, x0, y1, x1 = (float(v) for v in prompts.box)
        if not (y1 >= y0 and x1 >= x0):
            raise ModelError(f"box {prompts.box} is inverted (expected y0 <= y1 and x0 <= x1)")
        box = (min(max(y0, 0.0), h - 1), min(max(x0, 0.0), w - 1), min(max(y1, 0.0), h - 1), min(max(x1, 0.0), w - 1))
    points = [(min(max(float(y), 0.0), h - 1), min(max(float(x), 0.0), w - 1), bool(pos)) for y, x, pos in prompts.points]
    return ModelPrompts(box=box, points=points)
