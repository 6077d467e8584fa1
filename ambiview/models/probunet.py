"""Probabilistic U-Net (Kohl et al., "A Probabilistic U-Net for Segmentation of Ambiguous Images", NeurIPS 2018).

The reference baseline of the LIDC literature.  Sizes follow the defaults of the widely used PyTorch port (see
/work/shared/REFERENCES.md): filters [32, 64, 128, 192], 3 convs per block, latent dim 6, 4 combining 1x1 convs after
tiling z over the image, prior p(z|x) and posterior q(z|x,y) = the same encoder + spatial mean + 1x1 conv to 2 x latent
(mean and log sigma of an axis-aligned Gaussian); loss = BCE summed over pixels and batch + beta * batch-mean KL(q||p)
(+ 1e-5 x the sum of the weight norms of prior, posterior and combiner); at test time z is drawn from the prior.

It sees only the 64x64 standardised crop, as in the literature: no prompt.  Written from the paper's description.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

from .base import (
    Cancel,
    Engine,
    ModelError,
    ModelPrompts,
    OnSample,
    draw_in_batches,
    file_sha256,
    read_checkpoint,
    select_device,
    short_digest,
)

CHECKPOINT_FORMAT = "ambiview.probunet/1"
ENGINE_FAMILY = "probunet"  # the registry's FAMILIES key, stored as the checkpoint's "engine" metadata
ENGINE_TITLE = "Probabilistic U-Net (Kohl 2018)"


@dataclass(frozen=True)
class ProbUNetConfig:
    """Architecture and loss constants; stored in the checkpoint's metadata."""

    in_channels: int = 1
    filters: tuple[int, ...] = (32, 64, 128, 192)
    convs_per_block: int = 3
    latent_dim: int = 6
    fcomb_convs: int = 4
    beta: float = 10.0
    l2_weight: float = 1e-5

    def to_dict(self) -> dict:
        data = asdict(self)
        data["filters"] = list(self.filters)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ProbUNetConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "filters" in known:
            known["filters"] = tuple(int(f) for f in known["filters"])
        return cls(**known)


def _conv_stack(in_ch: int, out_ch: int, n: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True)]
    return layers


class Encoder(nn.Module):
    """Blocks of `convs_per_block` 3x3 convs + ReLU; every block after the first starts with a 2x2 average pool.

    Returns the output of every block (the U-Net's skips; the Gaussians use only the last)."""

    def __init__(self, in_channels: int, filters: tuple[int, ...], convs_per_block: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        previous = in_channels
        for level, width in enumerate(filters):
            pool = [nn.AvgPool2d(2)] if level > 0 else []
            self.blocks.append(nn.Sequential(*pool, *_conv_stack(previous, width, convs_per_block)))
            previous = width

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class UNet(nn.Module):
    """Encoder, then per level: bilinear 2x upsampling, concatenation with the skip, 3x3 convs.

    Ends with `filters[0]` feature channels; the combiner (`Fcomb`) turns them into logits."""

    def __init__(self, config: ProbUNetConfig) -> None:
        super().__init__()
        f = config.filters
        self.encoder = Encoder(config.in_channels, f, config.convs_per_block)
        self.decoder = nn.ModuleList(
            nn.Sequential(*_conv_stack(f[i + 1] + f[i], f[i], config.convs_per_block)) for i in reversed(range(len(f) - 1))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = self.encoder(x)
        x = skips[-1]
        for block, skip in zip(self.decoder, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return x


class AxisAlignedGaussian(nn.Module):
    """Encoder -> mean over the image -> 1x1 conv -> (mu, log sigma) of a diagonal Gaussian over z."""

    def __init__(self, config: ProbUNetConfig, extra_channels: int = 0) -> None:
        super().__init__()
        self.encoder = Encoder(config.in_channels + extra_channels, config.filters, config.convs_per_block)
        self.head = nn.Conv2d(config.filters[-1], 2 * config.latent_dim, 1)
        self.latent_dim = config.latent_dim

    def forward(self, x: torch.Tensor) -> Independent:
        pooled = self.encoder(x)[-1].mean(dim=(2, 3), keepdim=True)
        params = self.head(pooled)[:, :, 0, 0]
        mu, log_sigma = params[:, : self.latent_dim], params[:, self.latent_dim:]
        return Independent(Normal(mu, torch.exp(log_sigma)), 1)


class Fcomb(nn.Module):
    """Tile z over the feature map, concatenate, then `fcomb_convs` 1x1 convs (ReLU between) down to one logit."""

    def __init__(self, config: ProbUNetConfig) -> None:
        super().__init__()
        width = config.filters[0]
        layers: list[nn.Module] = [nn.Conv2d(width + config.latent_dim, width, 1), nn.ReLU(inplace=True)]
        for _ in range(config.fcomb_convs - 2):
            layers += [nn.Conv2d(width, width, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, 1, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """features (B, C, H, W), z (B, L) -> logits (B, 1, H, W)."""
        tiled = z[:, :, None, None].expand(-1, -1, *features.shape[-2:])
        return self.layers(torch.cat([features, tiled], dim=1))


@dataclass
class LossTerms:
    total: torch.Tensor
    reconstruction: torch.Tensor    # summed BCE
    kl: torch.Tensor                # batch mean of KL(q || p)
    l2: torch.Tensor = field(default_factory=lambda: torch.zeros(()))


class ProbUNet(nn.Module):
    def __init__(self, config: ProbUNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or ProbUNetConfig()
        self.unet = UNet(self.config)
        self.prior = AxisAlignedGaussian(self.config)
        self.posterior = AxisAlignedGaussian(self.config, extra_channels=1)
        self.fcomb = Fcomb(self.config)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal weights for the ReLU convs, zero biases (our choice; draws from torch's global generator)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    # --- inference --------------------------------------------------------------------------------------------------
    def features(self, image: torch.Tensor) -> torch.Tensor:
        """U-Net features of a batch of crops (B, 1, H, W)."""
        return self.unet(image)

    def decode(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Logits (B, 1, H, W) for latents z (B, L); features are broadcast when they hold one image."""
        if features.shape[0] == 1 and z.shape[0] > 1:
            features = features.expand(z.shape[0], -1, -1, -1)
        return self.fcomb(features, z)

    # --- training ---------------------------------------------------------------------------------------------------
    def loss(self, image: torch.Tensor, mask: torch.Tensor) -> LossTerms:
        """The negative ELBO with a reparameterised posterior sample, plus the port's small weight-norm penalty.

        image, mask: (B, 1, H, W) float; mask in {0, 1}."""
        posterior = self.posterior(torch.cat([image, mask], dim=1))
        prior = self.prior(image)
        logits = self.decode(self.features(image), posterior.rsample())
        reconstruction = F.binary_cross_entropy_with_logits(logits, mask, reduction="sum")
        kl = kl_divergence(posterior, prior).mean()
        l2 = sum(p.norm(2) for m in (self.prior, self.posterior, self.fcomb) for p in m.parameters())
        total = reconstruction + self.config.beta * kl + self.config.l2_weight * l2
        return LossTerms(total, reconstruction, kl, l2)


# --------------------------------------------------------------------------------------------------- checkpoint, engine


def load_checkpoint(path: Path) -> tuple[ProbUNet, dict[str, str]]:
    """Model (float32, eval mode, CPU) and metadata from a safetensors checkpoint written by train_probunet."""
    tensors, meta = read_checkpoint(path, CHECKPOINT_FORMAT, "a Probabilistic U-Net checkpoint")
    try:
        config = ProbUNetConfig.from_dict(json.loads(meta.get("config", "{}")))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{path}: unreadable config in the metadata ({exc})") from exc
    model = ProbUNet(config)
    try:
        model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit the Probabilistic U-Net ({str(exc).splitlines()[0]})") from exc
    return model.eval(), meta


@dataclass
class ProbUNetState:
    """U-Net features and the prior's Gaussian for one crop."""

    features: torch.Tensor  # (1, C, H, W)
    mu: torch.Tensor        # (1, latent)
    sigma: torch.Tensor     # (1, latent)
    shape: tuple[int, int]


class ProbUNetEngine(Engine):
    """Draws Probabilistic U-Net hypotheses: one U-Net pass per crop, then z ~ prior through the 1x1 combiner.

    The model segments the whole crop and takes no prompt, as in the literature.  It declares that it accepts a box
    only so that the app lets the user place one (the box centres and sizes the crop); the box itself is ignored.
    """

    dims = 2
    accepts = frozenset({"box"})
    default_samples = 16
    crop_size = 64

    def __init__(self, model: ProbUNet, name: str = ENGINE_FAMILY, title: str = ENGINE_TITLE,
                 checkpoint: Path | None = None, digest: str = "", device: torch.device | None = None,
                 batch_size: int = 16) -> None:
        self.model = model.eval()
        self.name, self.title, self.checkpoint, self.digest = name, title, checkpoint, digest
        self.device = device or torch.device("cpu")
        self.batch_size = batch_size
        self.model.to(self.device)

    @classmethod
    def from_checkpoint(cls, path: Path, device: str | torch.device | None = None) -> ProbUNetEngine:
        """Load a checkpoint onto a device (None: CUDA when present, else CPU)."""
        path = Path(path)
        model, meta = load_checkpoint(path)
        return cls(model, name=path.stem, title=meta.get("title", ENGINE_TITLE), checkpoint=path,
                   digest=short_digest(file_sha256(path)), device=select_device(device))

    def prepare(self, image: np.ndarray) -> ProbUNetState:
        image = np.asarray(image)
        if image.ndim != 2 or image.shape[0] % 8 or image.shape[1] % 8 or min(image.shape) < 8:
            raise ModelError(f"Probabilistic U-Net: expected a 2D crop with sides divisible by 8 (trained on 64x64), "
                             f"got shape {image.shape}")
        if not np.all(np.isfinite(image)):
            raise ModelError("Probabilistic U-Net: the crop contains NaN or infinite values")
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(self.device)
        with torch.inference_mode():
            prior = self.model.prior(x)
            return ProbUNetState(self.model.features(x), prior.base_dist.loc, prior.base_dist.scale,
                                 (int(image.shape[0]), int(image.shape[1])))

    def sample(self, state: ProbUNetState, prompts: ModelPrompts, n: int, seed: int,
               on_sample: OnSample | None = None, cancel: Cancel | None = None) -> np.ndarray:
        """n prior samples; the prompts are ignored (see the class docstring).  Same seed, same hypotheses."""
        if n < 1:
            raise ModelError(f"number of hypotheses must be at least 1, got {n}")
        # Latents drawn on the CPU one by one: hypothesis i depends only on (seed, i), not on n or the device.
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        eps = torch.stack([torch.randn(self.model.config.latent_dim, generator=generator) for _ in range(n)])
        z = state.mu + state.sigma * eps.to(state.mu.device)

        def draw(start: int, k: int) -> np.ndarray:
            return torch.sigmoid(self.model.decode(state.features, z[start:start + k]))[:, 0].float().cpu().numpy()

        with torch.inference_mode():
            return draw_in_batches(n, state.shape, self.batch_size, draw, on_sample, cancel, first_alone=False)
