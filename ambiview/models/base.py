"""The common face of every segmentation engine, and device selection.

An engine answers one question: given an image crop and prompts, draw N plausible segmentations.  `prepare` does the
expensive prompt-independent part once (an image embedding); `sample` turns prompts into hypotheses, streaming them as
they are ready.  Coordinates are crop pixels (row y, column x) of the crop handed to `prepare`.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..atomic_io import write_bytes_atomic  # noqa: F401  (re-exported: the models' writer of checkpoints)

OnSample = Callable[[int, np.ndarray], None]  # (hypotheses done so far, probabilities of this batch (k, H, W))
Cancel = Callable[[], bool]


class ModelError(Exception):
    """A problem the user can act on (missing or mismatched checkpoint, bad input data); the message names it."""


@dataclass
class ModelPrompts:
    """Prompts in crop pixel coordinates of the model input crop (H, W)."""

    box: tuple[float, float, float, float] | None = None  # (y0, x0, y1, x1), inclusive pixel bounds
    points: list[tuple[float, float, bool]] = field(default_factory=list)  # (y, x, positive)

    def is_empty(self) -> bool:
        return self.box is None and not self.points


@dataclass(frozen=True)
class EngineInfo:
    """What a model picker shows about an installed engine."""

    name: str
    title: str
    checkpoint: Path | None
    digest: str
    dims: int
    sampling: str = ""  # how the checkpoint samples, when it says (e.g. "temperature 1.3 · Sobol draws · box + 5 px")
    mirror_views: bool = False  # whether it can share its hypotheses out over mirrored views (mirror_views.py)


class Engine(ABC):
    """A probabilistic segmentation model ready to draw hypotheses on one device."""

    name: str
    title: str
    dims: int = 2
    accepts: frozenset[str] = frozenset({"box"})
    default_samples: int = 16
    crop_size: int = 64
    checkpoint: Path | None = None
    digest: str = ""
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def prepare(self, image: np.ndarray) -> Any:
        """Do the prompt-independent work for one crop.

        `image` is an (H, W) float32 crop standardised like the training crops ((HU - mean) / std of the crop).
        Returns an opaque state for `sample`.
        """

    @abstractmethod
    def sample(
        self,
        state: Any,
        prompts: ModelPrompts,
        n: int,
        seed: int,
        on_sample: OnSample | None = None,
        cancel: Cancel | None = None,
    ) -> np.ndarray:
        """Draw `n` hypotheses: (n, H, W) float32 probabilities in the crop grid.

        `on_sample(done, batch)` is called as each batch is ready; `cancel()` returning True stops at the next batch
        boundary (the hypotheses drawn so far are returned).  Same seed, same hypotheses.
        """


def box_support(box: tuple[float, float, float, float], shape: tuple[int, int], margin: float) -> np.ndarray:
    """Where a box prompt lets a hypothesis be: the pixels (i, j) with y0 - margin <= i <= y1 + margin and
    x0 - margin <= j <= x1 + margin (box inclusive, in pixel indices), as a (H, W) bool array."""
    h, w = shape
    y0, x0, y1, x1 = box
    rows = np.arange(h)
    cols = np.arange(w)
    inside_rows = (rows >= y0 - margin) & (rows <= y1 + margin)
    inside_cols = (cols >= x0 - margin) & (cols <= x1 + margin)
    return inside_rows[:, None] & inside_cols[None, :]


def draw_in_batches(n: int, shape: tuple[int, ...], batch_size: int, draw: Callable[[int, int], np.ndarray],
                    on_sample: OnSample | None = None, cancel: Cancel | None = None,
                    first_alone: bool = True) -> np.ndarray:
    """Hypotheses 0..n-1 as an (n, *shape) float32 array, `draw(start, k)` giving k of them at a time: the first
    alone when `first_alone` (so it is on screen at once), then `batch_size` at a time.  `on_sample(done, batch)`
    follows each batch; `cancel()` is asked before each, and a cancelled run returns the hypotheses drawn so far."""
    out = np.empty((n, *shape), dtype=np.float32)
    done = 0
    while done < n:
        if cancel is not None and cancel():
            break
        k = 1 if first_alone and done == 0 else min(batch_size, n - done)
        probs = draw(done, k)
        out[done:done + k] = probs
        done += k
        if on_sample is not None:
            on_sample(done, probs)
    return out[:done]


def select_device(requested: str | torch.device | None = None) -> torch.device:
    """The device to run on: `requested` when given ("cpu", "cuda", "cuda:1", "mps"), else CUDA when present, else CPU.

    Raises ModelError when the requested device is not available on this machine.
    """
    if requested is None or str(requested).lower() in ("", "auto"):
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(str(requested).lower())
    except RuntimeError as exc:
        raise ModelError(f"unknown device {requested!r} (use cpu, cuda, cuda:N or auto)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"device {requested!r} requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ModelError(f"device {requested!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ModelError(f"device {requested!r} requested but MPS is not available on this machine")
    elif device.type != "cpu":
        raise ModelError(f"unsupported device {requested!r} (use cpu, cuda, cuda:N or auto)")
    return device


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a GPU out-of-memory error (the engine then falls back to the CPU)."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Full hex sha256 of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def short_digest(sha256_hex: str) -> str:
    """The short form shown to users and stored with results."""
    return sha256_hex[:12]


def checked_checkpoint_path(path: Path) -> Path:
    """`path` as a Path when its name ends in .safetensors, the one format checkpoints are written in; else
    ModelError naming it."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ModelError(f"{path}: the checkpoint file name must end in .safetensors")
    return path


def read_checkpoint(path: Path, fmt: str, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors checkpoint whose metadata `format` is `fmt` (no code is executed).

    ModelError naming the file when it is missing, unreadable or of another format; `what` names the model family
    in that message ("a Probabilistic U-Net checkpoint")."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        raise ModelError(f"{path}: not a readable safetensors checkpoint ({exc})") from exc
    if meta.get("format") != fmt:
        raise ModelError(f"{path}: not {what} (format {meta.get('format')!r})")
    return tensors, meta


def default_precision(device: torch.device) -> str:
    """bfloat16 on a CPU with native bfloat16 matrix units (AMX or AVX512-BF16), else float32.

    On such CPUs SSB's U-Net under bfloat16 autocast is about 1.7x faster and Probabilistic SAM's mask decoder about
    1.3x, with the validation GED unchanged (measured in their model cards); elsewhere bfloat16 would be emulated and
    slower.  GPUs keep float32."""
    if device.type != "cpu":
        return "float32"
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        native = any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    except Exception:  # a private probe that changed between torch versions: stay exact
        native = False
    return "bfloat16" if native else "float32"
