"""Segmentation Schrödinger Bridge (Baru et al., arXiv 2509.17187, MICCAI 2025): our re-implementation, and its Engine.

Segmentation as a stochastic transport from the image (t = 1) to the mask (t = 0) along the Gaussian bridge of I²SB
(Liu et al., ICML 2023; see ssb_schedule.py).  The paper's method section is not available here: every choice below
is ours and is listed as such in models/ssb.md.

- Ends.  x0 = the mask scaled to [-1, 1]; x1 = tanh(standardised crop): the crop's own z-score squashed into (-1, 1)
  (lung about -0.8, soft tissue and nodule about +0.7), so both ends live on the same scale.
- Network.  A time-conditioned U-Net (ssb_unet.py) maps (x_t, t, image condition) to logits of x0.  It also takes a
  Gaussian latent and a pixel-noise channel: it is trained as a *generator* of x0 given x_t, not as a predictor of
  its mean.  With a sample of x0 instead of its mean, the posterior step below is the exact reverse kernel of the
  bridge for any step size, which is what lets 50 steps stand in for the full schedule.
- Sampling.  Start at x1 (the bridge has zero variance there; `start_noise` adds optional Gaussian noise, I²SB's
  "noisy x1" variant), then for each pair of grid times t > s: draw x0_hat from the network, then
  x_s ~ q(x_s | x0_hat, x_t) (I²SB's DDPM-like posterior).  The last step returns the network's probabilities.
- Guidance.  Classifier-free guidance on the image condition, combined in logit space:
  logit = (1 + w) logit(cond) - w logit(uncond); w = 0 is the plain conditional model (one network pass per step).
  For a Bernoulli output this is the noise (score) form of CFG: log p ∝ (1 + w) log p_cond - w log p_uncond.
- Randomness.  Hypothesis i draws its latent, pixel noise and posterior noise from its own generator seeded by
  (seed, i), so it depends only on (seed, i), not on how many hypotheses are drawn alongside.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .base import (
    Cancel,
    Engine,
    ModelError,
    ModelPrompts,
    OnSample,
    default_precision,
    file_sha256,
    is_out_of_memory,
    read_checkpoint,
    select_device,
    short_digest,
)
from .ssb_schedule import BridgeSchedule
from .ssb_unet import SsbUNet, SsbUNetConfig

log = logging.getLogger(__name__)

ENGINE_FAMILY = "ssb"  # the registry's FAMILIES key, stored as the checkpoint's "engine" metadata
CHECKPOINT_FORMAT = "ambiview.ssb/1"
ENGINE_TITLE = "Segmentation Schrödinger Bridge (SSB++, our re-implementation)"
DEFAULT_STEPS = 50

OnProgress = Callable[[int, int], None]  # (steps done, total steps)


@dataclass(frozen=True)
class SsbConfig:
    """Bridge, network and sampler settings stored with every checkpoint (training settings live in train_ssb)."""

    unet: SsbUNetConfig = field(default_factory=SsbUNetConfig)
    schedule: BridgeSchedule = field(default_factory=BridgeSchedule)
    image_scale: float = 1.0       # x1 = tanh(crop / image_scale)
    steps: int = DEFAULT_STEPS     # default number of sampling steps
    guidance: float = 0.0          # default classifier-free guidance scale w
    start_noise: float = 0.0       # std of the Gaussian noise added to x1 at the start of sampling
    eta: float = 1.0               # share of the posterior's noise drawn fresh at each step (1: I²SB's posterior)

    def to_json(self) -> str:
        data = asdict(self)
        data["unet"] = json.loads(self.unet.to_json())
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SsbConfig":
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "unet" in known:
            known["unet"] = SsbUNetConfig.from_json(json.dumps(known["unet"]))
        if "schedule" in known:
            known["schedule"] = BridgeSchedule(**{k: v for k, v in known["schedule"].items()
                                                  if k in BridgeSchedule.__dataclass_fields__})
        return cls(**known)


class SsbModel(nn.Module):
    """The U-Net with its bridge schedule: everything needed to train and to sample."""

    def __init__(self, config: SsbConfig | None = None) -> None:
        super().__init__()
        self.config = config or SsbConfig()
        self.net = SsbUNet(self.config.unet)

    @property
    def schedule(self) -> BridgeSchedule:
        return self.config.schedule

    def image_end(self, scan: torch.Tensor) -> torch.Tensor:
        """x1: the standardised crop squashed into (-1, 1)."""
        return torch.tanh(scan / self.config.image_scale)

    def logits(self, x_t: torch.Tensor, scan: torch.Tensor, t: torch.Tensor, latent: torch.Tensor,
               pixel_noise: torch.Tensor, guidance: float = 0.0, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x0 logits (B, 1, H, W); with guidance w != 0, (1 + w) cond - w uncond from one doubled batch."""
        b = x_t.shape[0]
        if guidance == 0.0:
            cond = torch.ones(b, device=x_t.device) if cond is None else cond
            return self.net(x_t, scan, t, cond, latent, pixel_noise)
        both = self.net(torch.cat([x_t, x_t]), torch.cat([scan, scan]), torch.cat([t, t]),
                        torch.cat([torch.ones(b, device=x_t.device), torch.zeros(b, device=x_t.device)]),
                        torch.cat([latent, latent]), torch.cat([pixel_noise, pixel_noise]))
        with_image, without = both[:b], both[b:]
        return (1.0 + guidance) * with_image - guidance * without


def hypothesis_generators(seed: int, first: int, count: int) -> list[torch.Generator]:
    """One CPU generator per hypothesis i in [first, first + count), seeded from (seed, i)."""
    gens = []
    for i in range(first, first + count):
        state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, i]).generate_state(2, dtype=np.uint32)
        gens.append(torch.Generator(device="cpu").manual_seed(int(state[0]) << 32 | int(state[1])))
    return gens


def _draw(gens: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=g) for g in gens])


@torch.inference_mode()
def bridge_sample(model: SsbModel, scan: torch.Tensor, gens: list[torch.Generator], steps: int, guidance: float,
                  start_noise: float = 0.0, on_progress: OnProgress | None = None, cancel: Cancel | None = None,
                  eta: float = 1.0) -> torch.Tensor | None:
    """Probabilities (k, H, W) of k = len(gens) hypotheses for one standardised crop `scan` (1, 1, H, W).

    Runs `steps` bridge steps from the image to the mask, all hypotheses batched.  Returns None when `cancel()`
    turned True at a step boundary."""
    sched = model.schedule
    times = sched.sampling_times(steps)
    k = len(gens)
    device = scan.device
    h, w = scan.shape[-2:]
    cfg = model.config.unet
    memory = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    scan_k = scan.expand(k, -1, -1, -1).contiguous(memory_format=memory)
    x1 = model.image_end(scan_k)
    x = x1
    if start_noise > 0:
        x = x + start_noise * _draw(gens, (1, h, w)).to(device)
    x = x.contiguous(memory_format=memory)
    probs = None
    for i in range(steps):
        if cancel is not None and cancel():
            return None
        t, s = float(times[i]), float(times[i + 1])
        latent = _draw(gens, (cfg.latent_dim,)).to(device)
        pixel_noise = _draw(gens, (cfg.noise_channels, h, w)).to(device)
        t_vec = torch.full((k,), t, device=device)
        logits = model.logits(x, scan_k, t_vec, latent, pixel_noise, guidance).float()
        if s == 0.0:
            probs = torch.sigmoid(logits[:, 0])
        else:
            x0_hat = torch.tanh(0.5 * logits)  # 2 p - 1: the predicted mask on the [-1, 1] scale
            a, b, carry, std = sched.step(s, t, eta)
            a_t, b_t, _ = sched.marginal(t)
            noise = _draw(gens, (1, h, w)).to(device)
            x = a * x0_hat + b * x1 + carry * (x - float(a_t) * x0_hat - float(b_t) * x1) + std * noise
        if on_progress is not None:
            on_progress(i + 1, steps)
    return probs


# --------------------------------------------------------------------------------------------------- checkpoint


def load_model(path: Path) -> tuple[SsbModel, dict[str, str]]:
    """Model (float32, eval mode, CPU) and metadata from a checkpoint written by train_ssb."""
    tensors, meta = read_checkpoint(path, CHECKPOINT_FORMAT, "a Segmentation Schrödinger Bridge checkpoint")
    try:
        config = SsbConfig.from_json(meta.get("config", "{}"))
        model = SsbModel(config)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{path}: unreadable config in the metadata ({exc})") from exc
    try:
        model.net.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit the SSB U-Net ({str(exc).splitlines()[0]})") from exc
    return model.eval(), meta


def checkpoint_metadata(config: SsbConfig, title: str = ENGINE_TITLE, **extra: str) -> dict[str, str]:
    """The metadata every SSB checkpoint carries (the registry reads `engine` and `title`)."""
    meta = {"format": CHECKPOINT_FORMAT, "engine": ENGINE_FAMILY, "title": title, "dims": "2",
            "config": config.to_json()}
    meta.update({k: str(v) for k, v in extra.items()})
    return meta


def save_checkpoint(path: Path, model: SsbModel, metadata: dict[str, str], half: bool = True) -> None:
    """Write the U-Net weights (float16 when `half`) and metadata atomically (temporary file, then os.replace)."""
    from safetensors.torch import save

    from .base import write_bytes_atomic

    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.net.state_dict().items()}
    write_bytes_atomic(Path(path), save(tensors, metadata=metadata))


# --------------------------------------------------------------------------------------------------- engine


@dataclass
class SsbState:
    """The prepared crop: standardised image (1, 1, H, W) on the engine's device."""

    scan: torch.Tensor
    shape: tuple[int, int]


class SsbEngine(Engine):
    """Draws SSB hypotheses: `steps` bridge steps from the image to the mask, all hypotheses in one batch.

    SSB is conditioned on the image only, not on prompts.  It declares that it accepts a box or points so that the app
    lets the user place them: the prompt selects the region of interest (the same crop pipeline as Probabilistic SAM,
    upstream of the engine), and the engine itself ignores it.  `steps` (default 50; up to the full training schedule)
    and `guidance` (classifier-free guidance scale w) can be set on the engine or per call.  Besides `on_sample`,
    `sample` takes an optional `on_progress(step, total_steps)`, since all hypotheses finish together at the last step;
    `cancel()` is checked at every step boundary.  `precision` ("float32" or "bfloat16") is chosen per device by
    `default_precision` and can be overridden.
    """

    dims = 2
    accepts = frozenset({"box", "point"})
    default_samples = 16
    crop_size = 64

    def __init__(self, model: SsbModel, name: str = ENGINE_FAMILY, title: str = ENGINE_TITLE,
                 checkpoint: Path | None = None, digest: str = "", device: torch.device | None = None,
                 metadata: dict[str, str] | None = None, batch_size: int = 0) -> None:
        self.model = model.eval()
        self.name, self.title, self.checkpoint, self.digest = name, title, checkpoint, digest
        self.metadata = metadata or {}
        self.steps = model.config.steps
        self.guidance = model.config.guidance
        self.start_noise = model.config.start_noise
        self.eta = model.config.eta
        self.batch_size = batch_size  # hypotheses per batch; 0: all at once (fastest on CPU and GPU)
        self._move(device or torch.device("cpu"))

    @classmethod
    def from_checkpoint(cls, path: Path, device: str | torch.device | None = None) -> "SsbEngine":
        """Load a checkpoint onto a device (None: CUDA when present, else CPU)."""
        path = Path(path)
        model, meta = load_model(path)
        return cls(model, name=path.stem, title=meta.get("title", ENGINE_TITLE), checkpoint=path,
                   digest=short_digest(file_sha256(path)), device=select_device(device), metadata=meta)

    @property
    def max_steps(self) -> int:
        """The full schedule: the number of training grid steps."""
        return self.model.schedule.n_train

    def _move(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.precision = default_precision(self.device)
        memory = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.model.to(self.device, memory_format=memory)

    def prepare(self, image: np.ndarray) -> SsbState:
        image = np.asarray(image)
        multiple = self.model.net.multiple
        if image.ndim != 2 or image.shape[0] % multiple or image.shape[1] % multiple or min(image.shape) < multiple:
            raise ModelError(f"SSB: expected a 2D crop with sides divisible by {multiple} (trained on 64x64), "
                             f"got shape {image.shape}")
        if not np.issubdtype(image.dtype, np.number) or not np.all(np.isfinite(image)):
            raise ModelError("SSB: the crop must be numeric without NaN or infinite values")
        scan = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
        return SsbState(scan, (int(image.shape[0]), int(image.shape[1])))

    def sample(self, state: SsbState, prompts: ModelPrompts | None, n: int, seed: int,
               on_sample: OnSample | None = None, cancel: Cancel | None = None,
               on_progress: OnProgress | None = None, steps: int | None = None,
               guidance: float | None = None, eta: float | None = None) -> np.ndarray:
        """n hypotheses (n, H, W) float32 probabilities; the prompts are ignored (see the class docstring).

        Same seed, same hypotheses.  A cancelled call returns the hypotheses of the batches already finished."""
        steps = int(self.steps if steps is None else steps)
        guidance = float(self.guidance if guidance is None else guidance)
        eta = float(self.eta if eta is None else eta)
        if n < 1:
            raise ModelError(f"number of hypotheses must be at least 1, got {n}")
        if not 1 <= steps <= self.max_steps:
            raise ModelError(f"SSB: steps must be between 1 and {self.max_steps} (the full schedule), got {steps}")
        if not np.isfinite(guidance) or guidance < 0:
            raise ModelError(f"SSB: guidance scale must be a finite number >= 0, got {guidance}")
        if not 0.0 <= eta <= 1.0:
            raise ModelError(f"SSB: eta must be between 0 and 1, got {eta}")
        try:
            return self._sample(state, n, seed, steps, guidance, eta, on_sample, cancel, on_progress)
        except Exception as exc:
            if self.device.type != "cuda" or not is_out_of_memory(exc):
                raise
            log.warning("%s: GPU out of memory (%s); continuing on the CPU", self.name, str(exc).splitlines()[0])
            torch.cuda.empty_cache()
            self._move(torch.device("cpu"))
            return self._sample(state, n, seed, steps, guidance, eta, on_sample, cancel, on_progress)

    def _sample(self, state: SsbState, n: int, seed: int, steps: int, guidance: float, eta: float,
                on_sample: OnSample | None, cancel: Cancel | None, on_progress: OnProgress | None) -> np.ndarray:
        scan = state.scan.to(self.device)
        batch = self.batch_size or n
        batches = [(first, min(batch, n - first)) for first in range(0, n, batch)]
        out = np.empty((n, *state.shape), dtype=np.float32)
        done = 0
        for number, (first, count) in enumerate(batches):

            def progress(step: int, total: int, number: int = number) -> None:
                if on_progress is not None:  # one step count over all batches
                    on_progress(number * total + step, total * len(batches))

            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
                probs = bridge_sample(self.model, scan, hypothesis_generators(seed, first, count), steps, guidance,
                                      self.start_noise, progress, cancel, eta)
            if probs is None:
                break
            out[first:first + count] = probs.float().cpu().numpy()
            done = first + count
            if on_sample is not None:
                on_sample(done, out[first:first + count])
        return out[:done]

