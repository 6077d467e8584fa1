"""Input checks shared by the uncertainty modules: stacks of hypotheses, masks and spacings.

Every public function of the package funnels its arrays through here, so bad input is answered with one clear
``ValueError`` naming the argument and the problem instead of a numpy broadcasting error deep inside a metric.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: A probability counts as foreground when it is strictly above this (binary masks are unaffected).
DEFAULT_THRESHOLD = 0.5


def as_stack(values, name: str = "hypotheses", *, allow_empty: bool = False) -> np.ndarray:
    """A stack (N, H, W) or (N, D, H, W) of masks (bool) or probabilities (float in [0, 1]), checked.

    Bool stays bool; integer 0/1 masks become bool; floats are returned as they are (no copy when already float).
    """
    array = np.asarray(values)
    if array.ndim not in (3, 4):
        raise ValueError(f"{name}: expected a stack of shape (N, H, W) or (N, D, H, W), got shape {array.shape}")
    if array.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name}: the stack holds no hypotheses (N = 0)")
    if any(size == 0 for size in array.shape[1:]):
        raise ValueError(f"{name}: an image dimension is empty, shape {array.shape}")
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(f"{name}: integer masks must hold only 0 and 1")
        return array.astype(bool)
    if np.issubdtype(array.dtype, np.floating):
        if array.size:
            low, high = float(np.min(array)), float(np.max(array))
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"{name}: probabilities contain NaN or infinity")
            if low < 0.0 or high > 1.0:
                raise ValueError(f"{name}: probabilities must lie in [0, 1], found [{low:g}, {high:g}]")
        return array
    raise ValueError(f"{name}: unsupported dtype {array.dtype} (expected bool masks or float probabilities)")


def as_masks(values, name: str = "masks", threshold: float = DEFAULT_THRESHOLD, **kwargs) -> np.ndarray:
    """A checked stack as bool masks; float probabilities become masks where they are strictly above threshold."""
    stack = as_stack(values, name, **kwargs)
    return stack if stack.dtype == bool else stack > threshold


def as_mask(values, name: str = "mask", ndim: tuple[int, ...] = (2, 3)) -> np.ndarray:
    """One mask (H, W) or (D, H, W) as bool (floats thresholded strictly above 0.5)."""
    array = np.asarray(values)
    if array.ndim not in ndim:
        raise ValueError(f"{name}: expected {' or '.join(f'{n}-D' for n in ndim)} mask, got shape {array.shape}")
    return as_masks(array[None], name)[0]


def same_image_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise unless two stacks have the same image shape (the hypothesis counts may differ)."""
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"{name_a} and {name_b} differ in image shape: {a.shape[1:]} vs {b.shape[1:]}")


def check_spacing(spacing: Sequence[float], ndim: int, name: str = "spacing") -> tuple[float, ...]:
    """Spacing in mm as floats, one per image axis ((dy, dx) in 2D, (dz, dy, dx) in 3D), all positive and finite."""
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {ndim} numbers in mm, got {spacing!r}") from None
    if len(values) != ndim:
        raise ValueError(f"{name}: a {ndim}-D mask needs {ndim} spacings, got {len(values)} ({spacing!r})")
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"{name}: spacings must be positive and finite, got {values}")
    return values


def check_fraction(value: float, name: str, *, low_open: bool = True) -> float:
    """A share in (0, 1] (or [0, 1] with low_open=False)."""
    value = float(value)
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {value:g}")
    return value
