"""UP-SAM's 3D data: nodule stacks of lidc-crops64 as short volumes, labelled/unlabelled split, windows, augmentation.

A volume is one run of consecutive slices of one nodule (lidc.nodule_stacks), 64 x 64 crops standardised per slice,
with every rater's mask per slice and the 50 % consensus.  Stacks are short (1-29 slices, median 4), so training cuts
or pads them to a fixed window of `depth` slices (ours: 8 in training; the engine's ROI is 16): a longer stack gives a
random window, a shorter one is placed at a random offset and padded with copies of its end slices.  Padded slices are
marked invalid: no loss is taken there (their true content, the slices the source dropped, is unknown).

The protocol's split (ours, as the SSL papers' "first N labelled"): `labelled` nodules are drawn with the seed among the
train nodules whose stack has at least `min_labelled_slices` slices; every other train nodule is unlabelled, its
masks never read by the trainer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import ModelError
from .lidc import LidcItem, NoduleStack, nodule_stacks


@dataclass(frozen=True)
class Window:
    """Where a stack goes in a window of `depth` slices: stack slices [start, start + count) -> window [offset, ...)."""

    depth: int
    start: int
    offset: int
    count: int

    def place(self, array: np.ndarray) -> np.ndarray:
        """(L, ...) stack array -> (depth, ...) window, padded by repeating the first/last placed slice."""
        part = array[self.start:self.start + self.count]
        before = self.offset
        after = self.depth - self.offset - self.count
        return np.concatenate([np.repeat(part[:1], before, axis=0), part, np.repeat(part[-1:], after, axis=0)])

    def valid(self) -> np.ndarray:
        """(depth,) bool: the window slices that hold real stack slices."""
        out = np.zeros(self.depth, bool)
        out[self.offset:self.offset + self.count] = True
        return out


def random_window(length: int, depth: int, rng: np.random.Generator) -> Window:
    if length >= depth:
        return Window(depth, int(rng.integers(length - depth + 1)), 0, depth)
    return Window(depth, 0, int(rng.integers(depth - length + 1)), length)


def centred_window(length: int, depth: int) -> Window:
    """A stack no longer than `depth` placed in the middle of the window (evaluation, like the app's centred ROI)."""
    if length > depth:
        raise ValueError(f"stack of {length} slices does not fit a window of {depth}")
    return Window(depth, 0, (depth - length) // 2, length)


def centred_input(scans: np.ndarray, depth: int) -> tuple[np.ndarray, slice]:
    """A stack (L, H, W) as a model input of at least `depth` slices: centred and padded with copies of its end slices
    when shorter, whole when longer; also where the stack's own slices lie in it."""
    length = scans.shape[0]
    if length >= depth:
        return scans, slice(0, length)
    window = centred_window(length, depth)
    return window.place(scans), slice(window.offset, window.offset + length)


def dihedral(array: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 flips/rotations of the last two axes (code 0 = identity)."""
    out = np.rot90(array, k=code % 4, axes=(-2, -1))
    return np.flip(out, axis=-1) if code >= 4 else out


@dataclass(frozen=True)
class Split:
    labelled: list[NoduleStack]
    unlabelled: list[NoduleStack]

    @property
    def labelled_nodules(self) -> list[str]:
        return sorted({s.nodule_id for s in self.labelled})


def split_labelled(items: list[LidcItem], labelled: int, seed: int, min_labelled_slices: int = 3) -> Split:
    """Draw `labelled` nodules (seeded) among those with a stack of >= min_labelled_slices; the rest is unlabelled."""
    stacks = nodule_stacks(items, min_slices=1)
    if labelled < 1:
        raise ModelError(f"at least one labelled nodule is needed, got labelled={labelled}")
    eligible = sorted({s.nodule_id for s in stacks if len(s.slice_indices) >= min_labelled_slices})
    if len(eligible) < labelled:
        raise ModelError(f"only {len(eligible)} train nodules have a stack of >= {min_labelled_slices} slices; "
                         f"cannot label {labelled}")
    rng = np.random.default_rng([seed, 7])
    chosen = set(rng.choice(eligible, size=labelled, replace=False).tolist())
    return Split([s for s in stacks if s.nodule_id in chosen], [s for s in stacks if s.nodule_id not in chosen])
