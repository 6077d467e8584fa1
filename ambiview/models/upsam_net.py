"""UP-SAM's domain-specific model: a small 3D VNet with four EU heads and a stochastic-segmentation-network head.

From the paper (Lu, Hong, Yang, BIBM 2024, Sec. III): a VNet backbone (shared encoder and decoder), four heads trained
with cross-entropy, Dice, IoU and focal loss whose predictions are averaged (the epistemic part), and logits modelled as
N(mu(x), D(x) + P(x) P(x)^T) with mu, D, P from distinct convolutions (Monteiro et al., NeurIPS 2020; the aleatoric
part).  Two classes with a softmax, as the paper's Eq. 4.

From FUSSNet's public code, the paper's skeleton (see REFERENCES.md): instance norm; a head = one conv block + a
1x1x1 conv to the classes; the SSN head = 1x1x1 convs on the decoder's last features for the mean, the log of the
diagonal (exp + 1e-5) and the factor (classes x rank 10).

Ours (the paper gives no sizes for its VNet; listed in models/upsam.md): 4 levels of 8, 16, 32, 64 channels instead of
5 levels from 16 (a CPU-sized network, 0.6 M parameters); 1, 2, 2, 2 convs per stage; the first downsampling halves
only the in-plane axes (CT slices are 2-3x thicker than the in-plane pixels of the crops), the others all three axes;
VNet-style residual stages and additive skips.  Input depth must be a multiple of 4 and the in-plane size of 8.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import LowRankMultivariateNormal

HEADS = ("ce", "dice", "iou", "focal")  # the four EU heads, in the order of UpSamOutput.heads


@dataclass(frozen=True)
class UpSamNetConfig:
    """Architecture constants; stored in the checkpoint's metadata."""

    in_channels: int = 1
    classes: int = 2
    filters: tuple[int, ...] = (8, 16, 32, 64)
    convs: tuple[int, ...] = (1, 2, 2, 2)
    head_kernel: int = 1
    rank: int = 10
    diag_eps: float = 1e-5
    first_down_inplane_only: bool = True

    def to_json(self) -> str:
        data = asdict(self)
        data["filters"], data["convs"] = list(self.filters), list(self.convs)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> UpSamNetConfig:
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("filters", "convs"):
            if key in known:
                known[key] = tuple(int(v) for v in known[key])
        config = cls(**known)
        if len(config.filters) != len(config.convs) or len(config.filters) < 2:
            raise ValueError("filters and convs must have the same length (at least 2 levels)")
        return config

    @property
    def depth_multiple(self) -> int:
        """Input depth must be a multiple of this."""
        downs = len(self.filters) - 1 - (1 if self.first_down_inplane_only else 0)
        return 2 ** downs

    @property
    def inplane_multiple(self) -> int:
        return 2 ** (len(self.filters) - 1)


def instance_norm(channels: int) -> nn.GroupNorm:
    """Instance norm with a per-channel affine: GroupNorm with one channel per group is the same function, and unlike
    InstanceNorm3d it keeps channels-last tensors channels-last (3-6x faster 3D convs on the CPU, measured)."""
    return nn.GroupNorm(channels, channels)


def _conv(in_ch: int, out_ch: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(in_ch, out_ch, kernel, padding=kernel // 2), instance_norm(out_ch),
                         nn.ReLU(inplace=True))


class ResidualStage(nn.Module):
    """`n` 3x3x3 conv + instance norm + ReLU, plus the stage input (VNet's residual stage)."""

    def __init__(self, channels: int, n: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[_conv(channels, channels) for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x) + x


def _resample(in_ch: int, out_ch: int, stride: tuple[int, int, int], up: bool) -> nn.Sequential:
    conv = (nn.ConvTranspose3d if up else nn.Conv3d)(in_ch, out_ch, stride, stride=stride)
    return nn.Sequential(conv, instance_norm(out_ch), nn.ReLU(inplace=True))


class VNet(nn.Module):
    """Encoder-decoder returning the decoder's last features (B, filters[0], D, H, W)."""

    def __init__(self, config: UpSamNetConfig) -> None:
        super().__init__()
        f = config.filters
        levels = len(f)
        strides = [(1, 2, 2) if (i == 0 and config.first_down_inplane_only) else (2, 2, 2) for i in range(levels - 1)]
        self.stem = _conv(config.in_channels, f[0])
        self.enc = nn.ModuleList(ResidualStage(f[i], config.convs[i]) for i in range(levels))
        self.down = nn.ModuleList(_resample(f[i], f[i + 1], strides[i], up=False) for i in range(levels - 1))
        self.up = nn.ModuleList(_resample(f[i + 1], f[i], strides[i], up=True) for i in range(levels - 1))
        self.dec = nn.ModuleList(ResidualStage(f[i], config.convs[i]) for i in range(levels - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for i, stage in enumerate(self.enc):
            x = stage(x)
            if i < len(self.down):
                skips.append(x)
                x = self.down[i](x)
        for i in reversed(range(len(self.up))):
            x = self.dec[i](self.up[i](x) + skips[i])  # additive skip, as the VNet of the SSL literature
        return x


class Head(nn.Module):
    """One EU head: a conv block, then a 1x1x1 conv to class logits."""

    def __init__(self, channels: int, classes: int, kernel: int) -> None:
        super().__init__()
        self.block = _conv(channels, channels, kernel)
        self.out = nn.Conv3d(channels, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(x))


class SsnHead(nn.Module):
    """Mean, log-diagonal and low-rank factor of the logit distribution (1x1x1 convs on the decoder features)."""

    def __init__(self, channels: int, classes: int, rank: int) -> None:
        super().__init__()
        self.classes, self.rank = classes, rank
        self.mean = nn.Conv3d(channels, classes, 1)
        self.log_diag = nn.Conv3d(channels, classes, 1)
        self.factor = nn.Conv3d(channels, classes * rank, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean (B, C, D, H, W), log-diagonal (B, C, D, H, W), factor (B, rank, C, D, H, W))."""
        b = x.shape[0]
        factor = self.factor(x).view(b, self.rank, self.classes, *x.shape[2:])
        return self.mean(x), self.log_diag(x), factor


@dataclass
class UpSamOutput:
    """What one forward pass gives."""

    heads: torch.Tensor      # (B, 4, C, D, H, W) logits of the four EU heads (order: HEADS)
    mean: torch.Tensor       # (B, C, D, H, W) SSN mean logits
    log_diag: torch.Tensor   # (B, C, D, H, W)
    factor: torch.Tensor     # (B, rank, C, D, H, W)

    def epistemic(self) -> torch.Tensor:
        """(B, C, D, H, W) class probabilities averaged over the four heads (the paper's averaged prediction)."""
        return torch.softmax(self.heads, dim=2).mean(dim=1)


class UpSamNet(nn.Module):
    def __init__(self, config: UpSamNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UpSamNetConfig()
        c = self.config
        self.vnet = VNet(c)
        self.heads = nn.ModuleList(Head(c.filters[0], c.classes, c.head_kernel) for _ in HEADS)
        self.ssn = SsnHead(c.filters[0], c.classes, c.rank)

    def check_input(self, x: torch.Tensor) -> None:
        d, h, w = x.shape[-3:]
        c = self.config
        if d % c.depth_multiple or h % c.inplane_multiple or w % c.inplane_multiple:
            raise ValueError(f"input (D, H, W) = {(d, h, w)}: D must be a multiple of {c.depth_multiple}, "
                             f"H and W of {c.inplane_multiple}")

    def forward(self, x: torch.Tensor) -> UpSamOutput:
        """x (B, 1, D, H, W) standardised crops."""
        self.check_input(x)
        features = self.vnet(x)
        heads = torch.stack([head(features) for head in self.heads], dim=1)
        mean, log_diag, factor = self.ssn(features)
        return UpSamOutput(heads, mean, log_diag, factor)


def logit_distribution(out: UpSamOutput, diag_eps: float = 1e-5) -> LowRankMultivariateNormal:
    """N(mu, D + P P^T) over the flattened logits (B, C*D*H*W), rank = out.factor.shape[1]."""
    b, rank = out.factor.shape[:2]
    loc = out.mean.reshape(b, -1)
    cov_diag = torch.exp(out.log_diag.reshape(b, -1)) + diag_eps
    cov_factor = out.factor.reshape(b, rank, -1).transpose(1, 2)
    return LowRankMultivariateNormal(loc, cov_factor, cov_diag)


def low_rank_logits(out: UpSamOutput, eps_rank: torch.Tensor, eps_diag: torch.Tensor,
                    diag_eps: float = 1e-5) -> torch.Tensor:
    """Logit samples mu + P eps_rank + sqrt(D) eps_diag, shaped (K, B, C, D, H, W).

    eps_rank (K, B, rank), eps_diag (K, B, C, D, H, W): the reparameterisation LowRankMultivariateNormal.rsample uses,
    written out so that the noise can come from a seeded generator (same seed, same hypotheses) and be mirrored.
    """
    std = torch.sqrt(torch.exp(out.log_diag) + diag_eps)
    spread = torch.einsum("kbr,brcdhw->kbcdhw", eps_rank, out.factor)
    return out.mean[None] + spread + std[None] * eps_diag


def antithetic_logits(out: UpSamOutput, k: int, generator: torch.Generator | None = None,
                      diag_eps: float = 1e-5) -> torch.Tensor:
    """k logit samples (k even): k/2 drawn, each mirrored about the mean (FUSSNet's antithetic sampling)."""
    if k % 2:
        raise ValueError(f"antithetic sampling needs an even sample count, got {k}")
    b, rank = out.factor.shape[:2]
    half = k // 2
    device = out.mean.device
    eps_rank = torch.randn((half, b, rank), generator=generator).to(device)
    eps_diag = torch.randn((half, *out.mean.shape), generator=generator).to(device)
    return low_rank_logits(out, torch.cat([eps_rank, -eps_rank]), torch.cat([eps_diag, -eps_diag]), diag_eps)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def pad_depth(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int]:
    """Pad the depth axis (dim -3) at the end with edge copies to a multiple; returns (padded, original depth)."""
    d = x.shape[-3]
    extra = (-d) % multiple
    if extra == 0:
        return x, d
    return F.pad(x, (0, 0, 0, 0, 0, extra), mode="replicate"), d
