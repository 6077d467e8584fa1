"""UP-SAM (Lu, Hong, Yang, "UP-SAM: Uncertainty-Informed Adaptation of Segment Anything Model for Semi-Supervised
Medical Image Segmentation", BIBM 2024): checkpoint and Engine.

The network (upsam_net.py) is a 3D VNet with four EU heads and a low-rank Gaussian over its logits; training
(train_upsam.py) aligns it with a foundation-model teacher on unlabelled volumes.  At inference the paper uses no
prompt, and neither do we: the prompt (a box or points on one slice) only places the 3D region of interest (64 x 64
pixels at native spacing x `roi_depth` slices centred on the prompt's slice, each slice standardised on its own like
the training crops).  Hypotheses come from ONE forward pass: the logit distribution N(mu, D + P P^T) is drawn n times
(mu + P e_r + sqrt(D) e_d), a cheap operation next to the network.  Hypothesis i uses the i-th draw of a CPU generator
seeded with `seed`, so it depends on (seed, i) only, not on n or the device.

Checkpoint (safetensors, loaded without executing code): `net.*` the VNet (float32), `teacher.mask_decoder.*` the
teacher's fine-tuned decoder tail (see upsam_teacher.py; not needed for inference), metadata `format`, `engine`,
`title`, `dims`, `config`, `teacher`, `training`, `data`.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .base import (
    Cancel,
    Engine,
    ModelError,
    ModelPrompts,
    OnSample,
    draw_in_batches,
    file_sha256,
    is_out_of_memory,
    read_checkpoint,
    select_device,
    short_digest,
    write_bytes_atomic,
)
from .upsam_net import UpSamNet, UpSamNetConfig, UpSamOutput, low_rank_logits, pad_depth

log = logging.getLogger(__name__)

ENGINE_FAMILY = "upsam"
CHECKPOINT_FORMAT = "ambiview.upsam/1"
ENGINE_TITLE = "UP-SAM (Lu 2024): 3D VNet + low-rank logit Gaussian"
NET_PREFIX = "net."
TEACHER_PREFIX = "teacher."
DATA_ATTRIBUTION = "LIDC-IDRI (Armato et al. 2011, CC BY 3.0); crops from rCampSemp/learn-vae-noisy-label"
CHANNELS_LAST = torch.channels_last_3d


@dataclass(frozen=True)
class UpSamConfig:
    """Network plus the inference geometry; stored in the checkpoint's metadata."""

    net: UpSamNetConfig = field(default_factory=UpSamNetConfig)
    roi_depth: int = 16   # slices of the app's 3D ROI (ours; the training windows are shorter, see train_upsam)
    crop_size: int = 64   # in-plane model pixels, native spacing (the lidc-crops64 crops)
    # Where the hypotheses are centred: "ssn" = plain draws of the SSN, N(mu, D + PP^T) (Monteiro et al.; the paper
    # draws no hypotheses at inference); "heads" = the averaged EU heads' foreground logit plus the SSN draw's
    # deviation from its mean (ours): for models whose SSN mean did not learn to segment (trained without the
    # trainer's mean_ce term it predicted no foreground on any validation stack), see the model card.
    centre: str = "ssn"

    def to_json(self) -> str:
        data = asdict(self)
        data["net"] = json.loads(self.net.to_json())
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> UpSamConfig:
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "net" in known:
            known["net"] = UpSamNetConfig.from_json(json.dumps(known["net"]))
        return cls(**known)


# ------------------------------------------------------------------------------------------------------ checkpoint


def save_checkpoint(path: Path, net: UpSamNet, config: UpSamConfig, record: dict,
                    teacher_state: dict[str, torch.Tensor] | None = None, teacher: str = "",
                    title: str = ENGINE_TITLE) -> None:
    """Write the VNet (+ the teacher's tuned tail) and metadata atomically."""
    from safetensors.torch import save

    tensors = {NET_PREFIX + k: v.detach().to("cpu", torch.float32).contiguous() for k, v in net.state_dict().items()}
    for key, value in (teacher_state or {}).items():
        if not key.startswith(TEACHER_PREFIX):
            raise ValueError(f"teacher tensor {key!r} lacks the {TEACHER_PREFIX!r} prefix")
        tensors[key] = value.detach().to("cpu", torch.float32).contiguous()
    metadata = {"format": CHECKPOINT_FORMAT, "engine": ENGINE_FAMILY, "title": title, "dims": "3",
                "config": config.to_json(), "teacher": teacher, "training": json.dumps(record),
                "data": DATA_ATTRIBUTION}
    write_bytes_atomic(Path(path), save(tensors, metadata=metadata))


def load_checkpoint(path: Path) -> tuple[UpSamNet, UpSamConfig, dict[str, str], dict[str, torch.Tensor]]:
    """(network in eval mode on the CPU, config, metadata, teacher tensors) from a checkpoint."""
    tensors, meta = read_checkpoint(path, CHECKPOINT_FORMAT, "an UP-SAM checkpoint")
    try:
        config = UpSamConfig.from_json(meta.get("config", "{}"))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{path}: unreadable config in the metadata ({exc})") from exc
    net = UpSamNet(config.net)
    state = {k[len(NET_PREFIX):]: v.float() for k, v in tensors.items() if k.startswith(NET_PREFIX)}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit the UP-SAM network ({str(exc).splitlines()[0]})") from exc
    teacher = {k: v for k, v in tensors.items() if k.startswith(TEACHER_PREFIX)}
    return net.eval(), config, meta, teacher


# ---------------------------------------------------------------------------------------------------------- engine


@dataclass
class UpSamState:
    """One forward pass on one ROI, cropped to its real depth."""

    mean: torch.Tensor        # (1, C, D, H, W) SSN mean logits
    log_diag: torch.Tensor    # (1, C, D, H, W)
    factor: torch.Tensor      # (1, rank, C, D, H, W)
    epistemic: np.ndarray     # (D, H, W) foreground probability averaged over the four EU heads
    shape: tuple[int, int, int]

    def output(self) -> UpSamOutput:
        return UpSamOutput(heads=torch.empty(0), mean=self.mean, log_diag=self.log_diag, factor=self.factor)

    def to(self, device: torch.device) -> UpSamState:
        return UpSamState(self.mean.to(device), self.log_diag.to(device), self.factor.to(device), self.epistemic,
                          self.shape)

    def heads_logit(self) -> torch.Tensor:
        """(D, H, W) foreground logit of the averaged heads (probabilities clipped to [1e-4, 1 - 1e-4])."""
        p = torch.from_numpy(np.clip(self.epistemic, 1e-4, 1 - 1e-4)).to(self.mean.device)
        return torch.log(p) - torch.log1p(-p)


CENTRES = ("heads", "ssn")


def hypothesis_probs(state: UpSamState, eps_rank: torch.Tensor, eps_diag: torch.Tensor, diag_eps: float,
                     centre: str) -> np.ndarray:
    """(K, D, H, W) foreground probabilities of K logit draws, centred as `centre` says (UpSamConfig.centre)."""
    logits = low_rank_logits(state.output(), eps_rank, eps_diag, diag_eps)
    # two classes: softmax(eta)[1] = sigmoid(eta_1 - eta_0)
    diff = logits[:, 0, 1] - logits[:, 0, 0]
    if centre == "heads":
        diff = diff - (state.mean[0, 1] - state.mean[0, 0])[None] + state.heads_logit()[None]
    return torch.sigmoid(diff).float().cpu().numpy()


def check_volume(image, crop_size_multiple: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] < 1:
        raise ModelError(f"UP-SAM: expected a 3D ROI (D, H, W), got shape {image.shape}")
    h, w = image.shape[1:]
    if h % crop_size_multiple or w % crop_size_multiple or min(h, w) < crop_size_multiple:
        raise ModelError(f"UP-SAM: in-plane size must be a multiple of {crop_size_multiple} (trained on 64 x 64), "
                         f"got {h} x {w}")
    if not np.issubdtype(image.dtype, np.number):
        raise ModelError(f"UP-SAM: expected a numeric ROI, got dtype {image.dtype}")
    image = np.ascontiguousarray(image, dtype=np.float32)
    if not np.all(np.isfinite(image)):
        raise ModelError("UP-SAM: the ROI contains NaN or infinite values")
    return image


class UpSamEngine(Engine):
    """Draws UP-SAM hypotheses for a 3D ROI: one VNet pass, then low-rank Gaussian draws of the logits."""

    dims = 3
    accepts = frozenset({"box", "point"})
    default_samples = 20

    def __init__(self, net: UpSamNet, config: UpSamConfig | None = None, name: str = ENGINE_FAMILY,
                 title: str = ENGINE_TITLE, checkpoint: Path | None = None, digest: str = "",
                 device: torch.device | None = None, batch_size: int = 5, metadata: dict | None = None) -> None:
        self.net = net.eval()
        self.config = config or UpSamConfig(net=net.config)
        self.roi_depth = self.config.roi_depth
        self.crop_size = self.config.crop_size
        if self.config.centre not in CENTRES:
            raise ModelError(f"UP-SAM: centre must be one of {', '.join(CENTRES)}, got {self.config.centre!r}")
        self.centre = self.config.centre
        self.name, self.title, self.checkpoint, self.digest = name, title, checkpoint, digest
        self.batch_size = batch_size
        self.metadata = metadata or {}
        self._move(device or torch.device("cpu"))

    @classmethod
    def from_checkpoint(cls, path: Path, device: str | torch.device | None = None) -> UpSamEngine:
        """Load a checkpoint onto a device (None: CUDA when present, else CPU)."""
        path = Path(path)
        net, config, meta, _ = load_checkpoint(path)
        return cls(net, config, name=path.stem, title=meta.get("title", ENGINE_TITLE), checkpoint=path,
                   digest=short_digest(file_sha256(path)), device=select_device(device), metadata=meta)

    def _move(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.net.to(self.device, memory_format=CHANNELS_LAST)

    def _fall_back_to_cpu(self, exc: BaseException) -> None:
        log.warning("%s: GPU out of memory (%s); continuing on the CPU", self.name, str(exc).splitlines()[0])
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self._move(torch.device("cpu"))

    # prepare -----------------------------------------------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> UpSamState:
        """The one forward pass for a standardised ROI (D, H, W); any depth (padded inside with edge slices)."""
        image = check_volume(image, self.net.config.inplane_multiple)
        try:
            return self._prepare(image)
        except Exception as exc:
            if self.device.type != "cuda" or not is_out_of_memory(exc):
                raise
            self._fall_back_to_cpu(exc)
            return self._prepare(image)

    def _prepare(self, image: np.ndarray) -> UpSamState:
        x = torch.from_numpy(image)[None, None].to(self.device)
        x, depth = pad_depth(x, self.net.config.depth_multiple)
        with torch.inference_mode():
            out = self.net(x.contiguous(memory_format=CHANNELS_LAST))
            keep = slice(0, depth)
            epistemic = out.epistemic()[0, 1, keep].float().cpu().numpy()
            return UpSamState(out.mean[:, :, keep].contiguous(), out.log_diag[:, :, keep].contiguous(),
                              out.factor[:, :, :, keep].contiguous(), epistemic, tuple(image.shape))

    def point_prediction(self, state: UpSamState) -> np.ndarray:
        """(D, H, W) probabilities of the averaged EU heads: the paper's deterministic prediction."""
        return state.epistemic

    # sample ------------------------------------------------------------------------------------------------------
    def sample(self, state: UpSamState, prompts: ModelPrompts | None, n: int, seed: int,
               on_sample: OnSample | None = None, cancel: Cancel | None = None) -> np.ndarray:
        """n hypotheses (n, D, H, W) float32; the prompts are ignored (they placed the ROI).  Same seed, same output."""
        if n < 1:
            raise ModelError(f"number of hypotheses must be at least 1, got {n}")
        try:
            return self._sample(state, n, seed, on_sample, cancel)
        except Exception as exc:
            if self.device.type != "cuda" or not is_out_of_memory(exc):
                raise
            self._fall_back_to_cpu(exc)
            return self._sample(state, n, seed, on_sample, cancel)

    def noise(self, state: UpSamState, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps_rank (n, 1, rank), eps_diag (n, 1, C, D, H, W)), hypothesis by hypothesis from one CPU generator."""
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        rank = state.factor.shape[1]
        diag_shape = tuple(state.mean.shape[1:])
        ranks, diags = [], []
        for _ in range(n):
            ranks.append(torch.randn((1, rank), generator=generator))
            diags.append(torch.randn((1, *diag_shape), generator=generator))
        return torch.stack(ranks), torch.stack(diags)

    def _sample(self, state: UpSamState, n: int, seed: int, on_sample: OnSample | None,
                cancel: Cancel | None) -> np.ndarray:
        if state.mean.device != self.device:
            state = state.to(self.device)
        eps_rank, eps_diag = self.noise(state, n, seed)

        def draw(start: int, k: int) -> np.ndarray:
            return hypothesis_probs(state, eps_rank[start:start + k].to(self.device),
                                    eps_diag[start:start + k].to(self.device), self.net.config.diag_eps, self.centre)

        with torch.inference_mode():
            return draw_in_batches(n, state.shape, self.batch_size, draw, on_sample, cancel)

    def sample_per_forward(self, image: np.ndarray, n: int, seed: int) -> np.ndarray:
        """The slow reference: one full forward pass per hypothesis (for the speed benchmark); the same hypotheses."""
        state = self.prepare(image)
        eps_rank, eps_diag = self.noise(state, n, seed)
        out = []
        for i in range(n):
            if i:
                state = self.prepare(image)
            with torch.inference_mode():
                out.append(hypothesis_probs(state.to(self.device), eps_rank[i:i + 1].to(self.device),
                                            eps_diag[i:i + 1].to(self.device), self.net.config.diag_eps,
                                            self.centre))
        return np.concatenate(out)
