"""The trainers `ambiview-cli train NAME` can run: NAME -> "module:function(request: TrainRequest) -> dict".

A trainer reads a lidc-crops64-like data folder, writes one safetensors checkpoint to `request.out` atomically and
returns a JSON-ready summary.  It raises ModelError for problems the user can fix.  Other model families add entries.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

TRAINERS: dict[str, str] = {
    "probsam": "ambiview.models.train_probsam:train",
    "ssb": "ambiview.models.train_ssb:train",
    "probunet": "ambiview.models.train_probunet:train_request",
    "upsam": "ambiview.models.train_upsam:train_request",
}
STARTS_FROM_CHECKPOINT = {"probsam"}  # the trainers that honour TrainRequest.init


@dataclass
class TrainRequest:
    """What the train command passes to a trainer; None means the trainer's own default."""

    data: Path
    out: Path
    epochs: int | None = None
    seed: int = 0
    device: str | None = None
    backbone: str | None = None
    limit: int | None = None
    command: str = ""
    options: dict[str, str] = field(default_factory=dict)  # trainer-specific KEY=VALUE settings
    init: Path | None = None  # a checkpoint to start from (fine-tuning); only the trainers in STARTS_FROM_CHECKPOINT
    log: Callable[[str], None] = print


def get_trainer(name: str) -> Callable[[TrainRequest], dict]:
    """The trainer function registered under `name` (KeyError when unknown)."""
    from .registry import resolve

    return resolve(TRAINERS[name])


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while training (main thread only), so `kill PID` stops cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class StopRecord:
    """Where a training run was stopped: `after` finished epochs, or None when it ran to its end."""

    after: int | None = None


@contextmanager
def epochs_until_stopped(history: list, log: Callable[[str], None]) -> Iterator[StopRecord]:
    """Run an epoch loop until it ends or Ctrl+C / SIGTERM stops it; a stop is swallowed (the trainer keeps the best
    epoch validated so far) and recorded as the number of epochs in `history` when it came."""
    record = StopRecord()
    with stop_on_sigterm():
        try:
            yield record
        except KeyboardInterrupt:
            record.after = len(history)
            log(f"stopped during epoch {record.after + 1}; keeping the best of the {record.after} finished epochs")


def typed_options(options: dict[str, str], types: dict[str, type], family: str) -> dict:
    """`--option KEY=VALUE` pairs converted by `types` (KEY -> int, float or str); ModelError for an unknown key or a
    value that does not convert, naming the family's known options."""
    from .base import ModelError  # here: the CLI imports this module to list the trainers, without torch

    settings: dict = {}
    for key, value in options.items():
        if key not in types:
            raise ModelError(f"unknown {family} option {key!r} (known: {', '.join(sorted(types))})")
        try:
            settings[key] = types[key](value)
        except ValueError:
            raise ModelError(f"option {key}={value!r}: expected {types[key].__name__}") from None
    return settings

