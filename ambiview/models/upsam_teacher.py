"""UP-SAM's foundation-model teacher: our 2D LiteMedSAM applied slice by slice, the box carried through the stack.

The paper's teacher is SAM-Med3D (3D ViT, point prompts); its weights cannot be had here, so the default teacher is
the 2D LiteMedSAM backbone (sam_backbone.py) used as MedSAM does for volumes (Ma et al. 2024, "3D segmentation via
sequential 2D slice processing"): segment a start slice from a box, then each neighbouring slice from the box of the
previous slice's mask grown by `margin` pixels, upwards and downwards, stopping in a direction at the first empty mask.

L_sam (paper Eq. 2) fine-tunes "only the final layers of the mask decoder (upsampling block and output MLP)".  Here
that is `mask_decoder.output_upscaling` (two transposed convs, LayerNorm) and
`mask_decoder.output_hypernetworks_mlps[0]` (the MLP of the single-mask token, the only one used with
multimask_output=False): 0.21 M of LiteMedSAM's parameters.
Everything before them (encoder, prompt encoder, two-way transformer) is frozen, which lets the frozen part's output be
computed once per (slice, box) and reused at every fine-tuning step (`FrozenDecoderPart`).

Input pipeline and box mapping as the other SAM engines (Backbone.preprocess, probsam.box_to_model); mask logits are
area-averaged from 256 x 256 to the 64 x 64 crop grid.  Embeddings come from the shared on-disk cache.

`SamMed3dTeacher` is the optional teacher of the paper, for a user who has SAM-Med3D's code and a checkpoint; it is
NOT tested here (neither is available on this machine) and supports inference only (no L_sam).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .base import ModelError
from .embedding_cache import EmbeddingCache
from .probsam import box_to_model
from .sam_backbone import Backbone

log = logging.getLogger(__name__)

TUNED_PREFIXES = ("output_upscaling.", "output_hypernetworks_mlps.0.")
STATE_PREFIX = "teacher.mask_decoder."
DEFAULT_MARGIN = 2.0  # pixels a carried box grows on each side (ours: "slightly grown")
Box = tuple[float, float, float, float]  # (y0, x0, y1, x1), inclusive crop pixels


def mask_box(mask: np.ndarray, margin: float, shape: tuple[int, int]) -> Box | None:
    """Bounding box of a 2D mask grown by `margin` on every side and clipped to the crop; None when empty."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    h, w = shape
    return (max(ys.min() - margin, 0.0), max(xs.min() - margin, 0.0), min(ys.max() + margin, h - 1.0),
            min(xs.max() + margin, w - 1.0))


def central_component(mask: np.ndarray) -> np.ndarray | None:
    """The 8-connected component of a 2D mask nearest to the crop centre (None when the mask is empty)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return None
    ys, xs = np.nonzero(labels)
    cy, cx = (mask.shape[0] - 1) / 2.0, (mask.shape[1] - 1) / 2.0
    nearest = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return labels == labels[ys[nearest], xs[nearest]]


def start_from_prediction(probs: np.ndarray, margin: float = DEFAULT_MARGIN) -> tuple[int, Box] | None:
    """(slice, box) to start the teacher from a student prediction (D, H, W): the middle slice, the box of the predicted
    component nearest to the ROI centre (the ROI is centred on the lesion).  None when that slice is empty."""
    z = probs.shape[0] // 2
    component = central_component(probs[z] > 0.5)
    return None if component is None else (z, mask_box(component, margin, probs.shape[1:]))


def central_start(depth: int, shape: tuple[int, int], side: float = 0.25) -> tuple[int, Box]:
    """The middle slice and a centred box whose side is `side` of the crop's (0.25: 16 px of 64): the prompt that a
    lesion-centred ROI implies when nothing else is known."""
    h, w = shape
    half = side / 2.0
    return depth // 2, (h * (0.5 - half), w * (0.5 - half), h * (0.5 + half) - 1, w * (0.5 + half) - 1)


@dataclass
class FrozenDecoderPart:
    """The frozen decoder's output for N (slice, box) pairs: image features after the transformer and the mask token."""

    src: torch.Tensor    # (N, C, h, w)
    token: torch.Tensor  # (N, C)


class SliceSamTeacher:
    """LiteMedSAM (or another SAM-family backbone) as a slice-by-slice 3D teacher with a tunable decoder tail."""

    name = "litemedsam-slices"

    def __init__(self, backbone: Backbone, cache: EmbeddingCache | None = None, device: torch.device | None = None,
                 margin: float = DEFAULT_MARGIN, batch: int = 16) -> None:
        self.backbone = backbone
        self.cache = cache
        self.device = device or torch.device("cpu")
        self.margin = margin
        self.batch = batch
        backbone.to(self.device)
        for module in (backbone.image_encoder, backbone.prompt_encoder, backbone.mask_decoder):
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
        for p in self.tuned_parameters():
            p.requires_grad_(True)

    # --- the tuned tail -------------------------------------------------------------------------------------------
    def tuned_parameters(self) -> list[torch.nn.Parameter]:
        return [p for k, p in self.backbone.mask_decoder.named_parameters() if k.startswith(TUNED_PREFIXES)]

    def tuned_state(self) -> dict[str, torch.Tensor]:
        """The tuned tensors, keyed for a checkpoint (`teacher.mask_decoder.<name>`)."""
        return {STATE_PREFIX + k: v.detach().cpu().clone() for k, v in self.backbone.mask_decoder.state_dict().items()
                if k.startswith(TUNED_PREFIXES)}

    def load_tuned_state(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        state = self.backbone.mask_decoder.state_dict()
        expected = {k for k in state if k.startswith(TUNED_PREFIXES)}
        given = {k[len(STATE_PREFIX):]: v for k, v in tensors.items() if k.startswith(STATE_PREFIX)}
        if set(given) != expected:
            missing = sorted(expected - set(given)) or sorted(set(given) - expected)
            raise ModelError(f"{source}: teacher tensors do not match the decoder (e.g. {missing[0]})")
        with torch.no_grad():
            for k, v in given.items():
                if state[k].shape != v.shape:
                    raise ModelError(f"{source}: teacher tensor {k} has shape {tuple(v.shape)}, "
                                     f"expected {tuple(state[k].shape)}")
                state[k].copy_(v.to(state[k].device, state[k].dtype))

    # --- embeddings -----------------------------------------------------------------------------------------------
    def embeddings(self, scans: np.ndarray) -> torch.Tensor:
        """(L, C, h, w) float32 encoder embeddings of standardised slices (L, H, W), from the disk cache when there."""
        out = []
        for scan in np.asarray(scans, np.float32):
            scan = np.ascontiguousarray(scan)
            key = self.cache.key(scan, self.backbone.sha256) if self.cache is not None else ""
            emb = self.cache.get(key) if self.cache is not None else None
            if emb is None:
                with torch.inference_mode():
                    fresh = self.backbone.encode(torch.from_numpy(scan).to(self.device))[0].float().cpu().numpy()
                emb = fresh.astype(np.float16)
                if self.cache is not None:
                    try:
                        emb = self.cache.put(key, fresh)
                    except OSError as exc:  # a full or read-only cache must not stop training
                        log.warning("embedding cache not written (%s)", exc)
            out.append(torch.from_numpy(np.asarray(emb)))
        return torch.stack(out).to(self.device, torch.float32)

    # --- decoding -------------------------------------------------------------------------------------------------
    def frozen_part(self, emb: torch.Tensor, boxes: list[Box], crop_hw: tuple[int, int]) -> FrozenDecoderPart:
        """Everything of SAM's mask decoder before the tuned layers, for N embeddings with one box each."""
        size = self.backbone.input_size
        sy, sx = size / crop_hw[0], size / crop_hw[1]
        sam_boxes = torch.tensor([box_to_model(b, sy, sx) for b in boxes], dtype=torch.float32, device=self.device)
        pe, md = self.backbone.prompt_encoder, self.backbone.mask_decoder
        with torch.no_grad():
            sparse, dense = pe(points=None, boxes=sam_boxes, masks=None)
            n = emb.shape[0]
            out_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0)[None].expand(n, -1, -1)
            tokens = torch.cat([out_tokens, sparse], dim=1)
            pos = pe.get_dense_pe().expand(n, -1, -1, -1)
            hs, src = md.transformer(emb + dense, pos, tokens)
            c, h, w = emb.shape[1:]
            return FrozenDecoderPart(src.transpose(1, 2).reshape(n, c, h, w), hs[:, 1])

    def tuned_logits(self, part: FrozenDecoderPart, crop_hw: tuple[int, int]) -> torch.Tensor:
        """Mask logits (N, H, W) in the crop grid from the frozen part, through the tuned layers (area-averaged)."""
        md = self.backbone.mask_decoder
        upscaled = md.output_upscaling(part.src)
        hyper = md.output_hypernetworks_mlps[0](part.token)
        low_res = torch.einsum("nc,nchw->nhw", hyper, upscaled)
        return F.adaptive_avg_pool2d(low_res[:, None], crop_hw)[:, 0]

    def mask_logits(self, emb: torch.Tensor, boxes: list[Box], crop_hw: tuple[int, int]) -> torch.Tensor:
        """Logits (N, H, W) for N (embedding, box) pairs, in chunks of `batch`; no gradients."""
        chunks = []
        with torch.no_grad():
            for i in range(0, len(boxes), self.batch):
                part = self.frozen_part(emb[i:i + self.batch], boxes[i:i + self.batch], crop_hw)
                chunks.append(self.tuned_logits(part, crop_hw))
        return torch.cat(chunks)

    # --- 3D by propagation ----------------------------------------------------------------------------------------
    def segment_stacks(self, embeddings: list[torch.Tensor], starts: list[tuple[int, Box]],
                       crop_hw: tuple[int, int]) -> list[np.ndarray]:
        """Masks (L_i, H, W) bool for each stack from its start (slice, box), the box carried slice to slice.

        All stacks advance together (one decoder batch per wave: the start slices, then one slice further up and
        down in every stack whose front is still going)."""
        masks = [np.zeros((e.shape[0], *crop_hw), bool) for e in embeddings]
        fronts = []  # (stack, slice, box, direction); direction 0 = the start slice
        for i, (z, box) in enumerate(starts):
            fronts.append((i, int(z), box, 0))
        while fronts:
            embs = torch.stack([embeddings[i][z] for i, z, _, _ in fronts])
            probs = torch.sigmoid(self.mask_logits(embs, [b for _, _, b, _ in fronts], crop_hw)).cpu().numpy()
            nxt = []
            for (i, z, _, direction), p in zip(fronts, probs):
                mask = p > 0.5
                masks[i][z] = mask
                box = mask_box(mask, self.margin, crop_hw)
                if box is None:
                    continue
                for step in ((-1, 1) if direction == 0 else (direction,)):
                    if 0 <= z + step < masks[i].shape[0]:
                        nxt.append((i, z + step, box, step))
            fronts = nxt
        return masks

    def segment_stack(self, scans: np.ndarray, start: tuple[int, Box]) -> np.ndarray:
        """One stack (L, H, W) of standardised slices -> (L, H, W) bool."""
        return self.segment_stacks([self.embeddings(scans)], [start], tuple(scans.shape[1:]))[0]


class SamMed3dTeacher:
    """SAM-Med3D (Wang et al. 2023) as the teacher, from a user's checkpoint and SAM-Med3D's own code.

    UNTESTED HERE: neither the code (github.com/uni-medical/SAM-Med3D, whose `segment_anything.build_sam3D` provides
    `sam_model_registry3D`) nor weights are available on this machine.  What it does, from SAM-Med3D's README usage:
    the stack is resampled to its 128^3 input (trilinear), one positive point at the start box's centre on the start
    slice, single-mask output resampled back and thresholded at 0.  Inference only: L_sam is not supported with it.
    """

    name = "sam-med3d"
    input_size = 128

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.device = device

    @classmethod
    def from_checkpoint(cls, path: Path, device: torch.device | None = None) -> SamMed3dTeacher:
        path = Path(path)
        try:
            from segment_anything.build_sam3D import sam_model_registry3D  # SAM-Med3D's fork of segment_anything
        except ImportError as exc:
            raise ModelError(
                "the SAM-Med3D teacher needs SAM-Med3D's code: its `segment_anything.build_sam3D` module "
                "(github.com/uni-medical/SAM-Med3D, installed so that `from segment_anything.build_sam3D import "
                f"sam_model_registry3D` works); it is not installed here ({exc})") from exc
        if not path.is_file():
            raise ModelError(f"{path}: SAM-Med3D checkpoint not found")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle/zip errors come in many types
            raise ModelError(f"{path}: cannot read as a PyTorch weights file ({exc})") from exc
        if isinstance(state, dict) and isinstance(state.get("model_state_dict"), dict):
            state = state["model_state_dict"]
        model = sam_model_registry3D["vit_b_ori"](checkpoint=None)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"{path}: weights do not fit SAM-Med3D vit_b_ori ({str(exc).splitlines()[0]})") from exc
        return cls(model, device or torch.device("cpu"))

    def tuned_parameters(self) -> list[torch.nn.Parameter]:
        return []

    def embeddings(self, scans: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(scans, np.float32))

    @torch.no_grad()
    def segment_stacks(self, embeddings: list[torch.Tensor], starts: list[tuple[int, Box]],
                       crop_hw: tuple[int, int]) -> list[np.ndarray]:
        out = []
        s = self.input_size
        for volume, (z, (y0, x0, y1, x1)) in zip(embeddings, starts):
            d = volume.shape[0]
            x = F.interpolate(volume[None, None].to(self.device), size=(s, s, s), mode="trilinear",
                              align_corners=False)
            emb = self.model.image_encoder(x)
            point = torch.tensor([[[(z + 0.5) * s / d, (y0 + y1 + 1) / 2 * s / crop_hw[0],
                                    (x0 + x1 + 1) / 2 * s / crop_hw[1]]]], device=self.device)
            sparse, dense = self.model.prompt_encoder(points=(point, torch.ones((1, 1), device=self.device)),
                                                      boxes=None, masks=None)
            low_res, _ = self.model.mask_decoder(
                image_embeddings=emb, image_pe=self.model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False)
            logits = F.interpolate(low_res, size=(d, *crop_hw), mode="trilinear", align_corners=False)
            out.append((logits[0, 0] > 0).cpu().numpy())
        return out


def build_teacher(spec: str | None, backbone_loader, device: torch.device,
                  cache: EmbeddingCache | None = None, margin: float = DEFAULT_MARGIN):
    """'litemedsam' (default) -> SliceSamTeacher; 'sam-med3d:/path.pth' -> SamMed3dTeacher; ModelError otherwise."""
    spec = (spec or "litemedsam").strip()
    name, _, path = spec.partition(":")
    if name.lower() == "sam-med3d":
        if not path:
            raise ModelError("teacher sam-med3d needs its checkpoint: teacher=sam-med3d:/path/to/sam_med3d.pth")
        return SamMed3dTeacher.from_checkpoint(Path(path).expanduser(), device)
    return SliceSamTeacher(backbone_loader(spec), cache=cache, device=device, margin=margin)
