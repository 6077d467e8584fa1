"""Deterministic LiteMedSAM baselines: the pretrained backbone as it ships, no fine-tuning, as an Engine.

Two variants, registered as built-in engines (they need no checkpoint of ours):

- ``litemedsam`` — SAM's single-mask output for the box; the one mask is repeated n times (a deterministic model has
  exactly one answer, so its hypotheses never differ).
- ``litemedsam-multimask`` — SAM's three multimask outputs (its whole / part / sub-part answers to an ambiguous
  prompt), ordered by SAM's own predicted IoU, best first, and cycled to n: hypothesis i is mask i mod 3 (for n = 16
  the three masks appear 6, 5 and 5 times).  Not sampling: the same three masks for every seed.

The input pipeline is the one Probabilistic SAM is trained with (sam_backbone.Backbone.preprocess: crop min-max scaled
to [0, 1], bilinear to 256 px, 3 channels) and the same box mapping (probsam.box_to_model); the low-resolution logits
are area-averaged to the crop grid as there.  Embeddings go through the shared on-disk cache, so a crop already embedded
for Probabilistic SAM is not encoded again.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .base import Cancel, Engine, ModelError, ModelPrompts, OnSample, select_device, short_digest
from .embedding_cache import EmbeddingCache
from .probsam import box_to_model
from .sam_backbone import Backbone, load_backbone

SINGLE = "litemedsam"
MULTIMASK = "litemedsam-multimask"
TITLES = {
    SINGLE: "LiteMedSAM (deterministic, one mask)",
    MULTIMASK: "LiteMedSAM multimask (3 fixed masks)",
}


@dataclass
class LiteMedSamState:
    embedding: torch.Tensor  # (1, C, h, w) float32 (from the float16 cache)
    shape: tuple[int, int]


class LiteMedSamEngine(Engine):
    """The pretrained LiteMedSAM answering a box prompt with one mask (or its three multimask outputs)."""

    dims = 2
    accepts = frozenset({"box"})
    default_samples = 16
    crop_size = 64

    def __init__(self, backbone: Backbone, multimask: bool = False, device: torch.device | None = None,
                 cache: EmbeddingCache | None = None) -> None:
        self.backbone = backbone
        self.multimask = multimask
        self.name = MULTIMASK if multimask else SINGLE
        self.title = TITLES[self.name]
        self.checkpoint = backbone.source
        self.digest = short_digest(backbone.sha256)
        self.device = device or torch.device("cpu")
        self.cache = cache
        backbone.to(self.device)

    @classmethod
    def build(cls, device: str | torch.device | None = None, multimask: bool = False,
              backbone_spec: str | None = None) -> LiteMedSamEngine:
        """The bundled LiteMedSAM (or another SAM-family `backbone_spec`) on a device (None: CUDA when present)."""
        return cls(load_backbone(backbone_spec), multimask=multimask, device=select_device(device),
                   cache=EmbeddingCache())

    def prepare(self, image: np.ndarray) -> LiteMedSamState:
        image = np.asarray(image)
        if image.ndim != 2 or min(image.shape) < 8:
            raise ModelError(f"LiteMedSAM: expected a 2D crop (H, W) of at least 8x8 pixels, got shape {image.shape}")
        image = np.ascontiguousarray(image, dtype=np.float32)
        if not np.all(np.isfinite(image)):
            raise ModelError("LiteMedSAM: the crop contains NaN or infinite values")
        key = self.cache.key(image, self.backbone.sha256) if self.cache is not None else ""
        embedding = self.cache.get(key) if self.cache is not None else None
        if embedding is None:
            with torch.inference_mode():
                fresh = self.backbone.encode(torch.from_numpy(image).to(self.device))[0].float().cpu().numpy()
            embedding = self.cache.put(key, fresh) if self.cache is not None else fresh.astype(np.float16)
        emb = torch.from_numpy(np.asarray(embedding)).to(self.device, torch.float32)[None]
        return LiteMedSamState(emb, (int(image.shape[0]), int(image.shape[1])))

    def masks(self, state: LiteMedSamState, prompts: ModelPrompts) -> np.ndarray:
        """SAM's distinct answers for the box: (1, H, W) or, multimask, (3, H, W) probabilities, best IoU first."""
        if prompts is None or prompts.box is None:
            raise ModelError(f"{self.title} needs a box prompt")
        h, w = state.shape
        y0, x0, y1, x1 = (float(v) for v in prompts.box)
        if y1 < y0 or x1 < x0:
            raise ModelError(f"box {prompts.box} is inverted (expected y0 <= y1 and x0 <= x1)")
        box = (min(max(y0, 0.0), h - 1), min(max(x0, 0.0), w - 1), min(max(y1, 0.0), h - 1), min(max(x1, 0.0), w - 1))
        size = self.backbone.input_size
        sam_box = torch.tensor([box_to_model(box, size / h, size / w)], dtype=torch.float32, device=self.device)
        with torch.inference_mode():
            sparse, dense = self.backbone.prompt_encoder(points=None, boxes=sam_box, masks=None)
            low_res, iou = self.backbone.mask_decoder(
                image_embeddings=state.embedding,
                image_pe=self.backbone.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=self.multimask,
            )
            probs = torch.sigmoid(F.adaptive_avg_pool2d(low_res, state.shape))[0].float().cpu().numpy()
            order = torch.argsort(iou[0], descending=True).cpu().numpy()
        return probs[order]

    def sample(self, state: LiteMedSamState, prompts: ModelPrompts, n: int, seed: int,
               on_sample: OnSample | None = None, cancel: Cancel | None = None) -> np.ndarray:
        """The masks cycled to n (seed unused: the model is deterministic)."""
        if n < 1:
            raise ModelError(f"number of hypotheses must be at least 1, got {n}")
        distinct = self.masks(state, prompts)
        out = distinct[np.arange(n) % len(distinct)].astype(np.float32)
        if on_sample is not None:
            on_sample(n, out)
        return out


def single(device: str | torch.device | None = None) -> LiteMedSamEngine:
    """Registry factory for "litemedsam"."""
    return LiteMedSamEngine.build(device, multimask=False)


def multimask(device: str | torch.device | None = None) -> LiteMedSamEngine:
    """Registry factory for "litemedsam-multimask"."""
    return LiteMedSamEngine.build(device, multimask=True)

