"""The time-conditioned U-Net of our Segmentation Schrödinger Bridge: predicts the mask end x0 of the bridge.

Inputs per item: the bridge state x_t (1 channel), the image condition (1 channel, zeroed when the condition is
dropped for classifier-free guidance), `noise_channels` channels of pixel noise, the time t in [0, 1], a flag saying
whether the condition is present, and a generator latent (a Gaussian vector).  The noise inputs make the network a
conditional generator of x0 rather than a predictor of its mean (see ssb.py for why).  Output: logits of the mask.

Layout (ours; the paper says only "a time-dependent U-Net with refined residual connections"): a 2x2 pixel-unshuffle
stem (the 64x64 inputs become 32x32 with 4x the channels, so every convolution runs on a quarter of the pixels),
levels of residual blocks whose GroupNorm is modulated by the embedding of (t, latent, condition flag) (scale and
shift, as in improved DDPM), strided-convolution downsampling, nearest upsampling (no convolution of its own), skip concatenation, and a
pixel-shuffle head back to full resolution.  The last convolution of every residual branch starts at zero, so each
block starts as the identity.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SsbUNetConfig:
    """Architecture constants, stored in the checkpoint's metadata."""

    widths: tuple[int, ...] = (32, 64, 96)  # channels per level (after the pixel-unshuffle stem)
    blocks: int = 1                          # residual blocks per level, encoder and decoder alike
    patch: int = 2                           # pixel-unshuffle factor of the stem
    emb_dim: int = 128
    latent_dim: int = 16
    noise_channels: int = 1
    groups: int = 8

    def to_json(self) -> str:
        data = asdict(self)
        data["widths"] = list(self.widths)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SsbUNetConfig":
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "widths" in known:
            known["widths"] = tuple(int(w) for w in known["widths"])
        return cls(**known)


def timestep_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """Sinusoidal features (B, dim) of t in [0, 1] (scaled so that 1/1000 steps are resolved)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = (t.float() * scale)[:, None] * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, then GroupNorm with the embedding's scale/shift, SiLU, conv; plus a (1x1) skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(min(groups, out_ch), out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class SsbUNet(nn.Module):
    """x0 logits from (x_t, image, t, condition flag, latent, pixel noise)."""

    def __init__(self, config: SsbUNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or SsbUNetConfig()
        if not c.widths or c.blocks < 1 or c.patch < 1:
            raise ValueError(f"bad U-Net config {c}")
        self.emb_time = nn.Sequential(nn.Linear(c.emb_dim, c.emb_dim), nn.SiLU(), nn.Linear(c.emb_dim, c.emb_dim))
        self.emb_latent = nn.Linear(c.latent_dim, c.emb_dim) if c.latent_dim else None
        self.emb_cond = nn.Embedding(2, c.emb_dim)  # 0: condition dropped, 1: image present
        in_ch = (2 + c.noise_channels) * c.patch * c.patch
        self.stem = nn.Conv2d(in_ch, c.widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for level, width in enumerate(c.widths):
            prev = c.widths[max(level - 1, 0)] if level else c.widths[0]
            blocks = [ResBlock(prev if i == 0 else width, width, c.emb_dim, c.groups) for i in range(c.blocks)]
            self.down_blocks.append(nn.ModuleList(blocks))
            if level < len(c.widths) - 1:
                self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
        self.mid = ResBlock(c.widths[-1], c.widths[-1], c.emb_dim, c.groups)
        self.up_blocks = nn.ModuleList()
        for level in reversed(range(len(c.widths))):
            width = c.widths[level]
            below = c.widths[level + 1] if level < len(c.widths) - 1 else c.widths[-1]
            blocks = [ResBlock(below + width if i == 0 else width, width, c.emb_dim, c.groups)
                      for i in range(c.blocks)]
            self.up_blocks.append(nn.ModuleList(blocks))
        self.head_norm = nn.GroupNorm(min(c.groups, c.widths[0]), c.widths[0])
        self.head = nn.Conv2d(c.widths[0], c.patch * c.patch, 3, padding=1)

    @property
    def multiple(self) -> int:
        """Input sides must be divisible by this."""
        return self.config.patch * 2 ** (len(self.config.widths) - 1)

    def embedding(self, t: torch.Tensor, cond: torch.Tensor, latent: torch.Tensor | None) -> torch.Tensor:
        emb = self.emb_time(timestep_embedding(t, self.config.emb_dim)) + self.emb_cond(cond.long())
        if self.emb_latent is not None and latent is not None:
            emb = emb + self.emb_latent(latent)
        return emb

    def forward(self, x_t: torch.Tensor, image: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                latent: torch.Tensor | None = None, pixel_noise: torch.Tensor | None = None) -> torch.Tensor:
        """x_t, image: (B, 1, H, W); t: (B,) in [0, 1]; cond: (B,) 0/1; latent: (B, L); pixel_noise: (B, C, H, W).

        Returns logits (B, 1, H, W).  The image is multiplied by `cond`, so a dropped condition reads as zeros."""
        c = self.config
        image = image * cond.to(image.dtype)[:, None, None, None]
        parts = [x_t, image]
        if c.noise_channels:
            if pixel_noise is None:
                pixel_noise = torch.zeros(x_t.shape[0], c.noise_channels, *x_t.shape[-2:], device=x_t.device,
                                          dtype=x_t.dtype)
            parts.append(pixel_noise)
        h = self.stem(F.pixel_unshuffle(torch.cat(parts, dim=1), c.patch))
        emb = F.silu(self.embedding(t, cond, latent))
        skips = []
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.mid(h, emb)
        for i, blocks in enumerate(self.up_blocks):
            h = torch.cat([h, skips.pop()], dim=1)  # only the first block of a level takes the skip
            for block in blocks:
                h = block(h, emb)
            if i < len(self.up_blocks) - 1:  # the next block's first convolution mixes the upsampled pixels
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        return F.pixel_shuffle(self.head(F.silu(self.head_norm(h))), c.patch)
