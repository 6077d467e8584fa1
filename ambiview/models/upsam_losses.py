"""UP-SAM's losses (Lu, Hong, Yang, BIBM 2024, Eqs. 1-5) and the Gaussian ramp-up of the alignment weight.

Every loss takes a `valid` weight map (B, D, H, W) in {0, 1}: training volumes are short stacks padded in depth, and
padded slices carry no label (they count nowhere).  Labels are (B, D, H, W) in {0, 1} (foreground = class 1).

- Eq. 1, L_seg: the sum over the four EU heads of their own loss (CE, Dice, IoU, focal) against the label.
- Eq. 2, L_sam: CE + Dice of the teacher's mask logits against the label (see upsam_teacher.py).
- Eq. 3, the SSN likelihood (Monteiro et al. 2020): -log (1/K) sum_k p(y | eta_k).
- Eq. 4, L_align: cross-entropy of every logit sample eta_k against the teacher's mask on unlabelled volumes.
- Eq. 5: alpha (L_seg + L_sam) + lambda(t) L_align, alpha = 0.5, lambda a Gaussian ramp-up to 1.

Ours (the paper does not say; listed in models/upsam.md): losses are means over valid voxels (and over the K samples
in Eq. 4) instead of the paper's sums, so that the weights alpha and lambda balance terms of the same scale; soft Dice
and soft IoU are taken on the foreground probability over the whole batch with smoothing 1; focal loss gamma = 2
(Lin et al. 2017's default); the ramp-up is exp(-5 (1 - t/T)^2) (Laine & Aila 2017, the form used by the SSL code the
paper follows [7], [9], [34]).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ALPHA = 0.5
LAMBDA_MAX = 1.0
FOCAL_GAMMA = 2.0
SMOOTH = 1.0


def _voxel_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of per-voxel values (..., B, D, H, W) over the valid voxels (and any leading axes)."""
    weight = valid.expand_as(values)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def cross_entropy(logits: torch.Tensor, label: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """logits (B, C, D, H, W), label (B, D, H, W) long or {0, 1}."""
    return _voxel_mean(F.cross_entropy(logits, label.long(), reduction="none"), valid)


def _foreground(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=1)[:, 1]


def dice_loss(logits: torch.Tensor, label: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    p, y = _foreground(logits) * valid, label.float() * valid
    return 1.0 - (2.0 * (p * y).sum() + SMOOTH) / (p.sum() + y.sum() + SMOOTH)


def iou_loss(logits: torch.Tensor, label: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    p, y = _foreground(logits) * valid, label.float() * valid
    inter = (p * y).sum()
    return 1.0 - (inter + SMOOTH) / (p.sum() + y.sum() - inter + SMOOTH)


def focal_loss(logits: torch.Tensor, label: torch.Tensor, valid: torch.Tensor,
               gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    log_p = -F.cross_entropy(logits, label.long(), reduction="none")  # log p of the true class
    return _voxel_mean(-((1.0 - log_p.exp()) ** gamma) * log_p, valid)


HEAD_LOSSES = (cross_entropy, dice_loss, iou_loss, focal_loss)  # the order of upsam_net.HEADS


def seg_loss(heads: torch.Tensor, label: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """Eq. 1: sum over the four heads (B, 4, C, D, H, W) of their own loss; also the four values for the log."""
    terms = [loss(heads[:, i], label, valid) for i, loss in enumerate(HEAD_LOSSES)]
    return torch.stack(terms).sum(), [float(t.detach()) for t in terms]


def sample_cross_entropy(samples: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Per-voxel CE of every logit sample: samples (K, B, C, D, H, W) -> (K, B, D, H, W)."""
    k, b = samples.shape[:2]
    flat = samples.reshape(k * b, *samples.shape[2:])
    target = label.long()[None].expand(k, *label.shape).reshape(k * b, *label.shape[1:])
    return F.cross_entropy(flat, target, reduction="none").reshape(k, b, *label.shape[1:])


def ssn_nll(samples: torch.Tensor, label: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Eq. 3 (Monteiro 2020): -log mean_k p(y | eta_k), p(y | eta) = prod over valid voxels; per voxel, batch mean."""
    ce = sample_cross_entropy(samples, label) * valid[None]
    log_lik = -ce.flatten(2).sum(-1)                       # (K, B): log p(y | eta_k)
    k = samples.shape[0]
    nll = -(torch.logsumexp(log_lik, dim=0) - math.log(k))  # (B,)
    voxels = valid.flatten(1).sum(-1).clamp_min(1.0)
    return (nll / voxels).mean()


def align_loss(samples: torch.Tensor, teacher_mask: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Eq. 4: CE of each logit sample against the teacher's mask, averaged over samples and valid voxels."""
    return _voxel_mean(sample_cross_entropy(samples, teacher_mask), valid[None])


def gaussian_rampup(step: int, length: int, maximum: float = LAMBDA_MAX) -> float:
    """lambda(t) = maximum * exp(-5 (1 - t/T)^2) for t < T, then maximum (T <= 0: maximum at once)."""
    if length <= 0 or step >= length:
        return float(maximum)
    phase = 1.0 - max(step, 0) / length
    return float(maximum * math.exp(-5.0 * phase * phase))


def sam_loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Eq. 2: binary CE + soft Dice of teacher mask logits (N, H, W) against labels (N, H, W)."""
    y = label.float()
    bce = F.binary_cross_entropy_with_logits(logits, y)
    p = torch.sigmoid(logits)
    dice = 1.0 - (2.0 * (p * y).sum() + SMOOTH) / (p.sum() + y.sum() + SMOOTH)
    return bce + dice
