"""Train UP-SAM semi-supervised on lidc-crops64 nodule stacks: few labelled nodules, the rest unlabelled.

    ambiview-cli train upsam --data ../shared/data/lidc-crops64 --out models/upsam.safetensors [--option labelled=4]
    ambiview-cli train upsam ... --option semi=0        (the paper's "Sup-only" row: the VNet on the labelled alone)

Phases (paper Sec. III-IV; every shortening is ours, for a one-hour run on a 2-core CPU, and listed in models/upsam.md):

0. L_sam (Eq. 2): the teacher's decoder tail (upsam_teacher.py) is fine-tuned on the labelled slices, box = the
   slice's consensus box grown by the carry margin.  Eq. 5 sums L_sam with the VNet's terms, but they touch disjoint
   parameters, so running it first (`sam_steps` AdamW steps) is the same objective in another order; it lets the
   teacher's frozen part be computed once.
1. Pre-training on the labelled volumes: alpha (L_seg + L_ssn), Adam lr 1e-3 (FUSSNet's optimiser; the paper: SGD
   lr 1e-2 for 7.5k iterations; in our 10x shorter run SGD (momentum 0.9) was too slow: summed head loss 1.92 vs
   Adam's 1.52 after 300 steps, see models/upsam.md; ours: `pretrain_steps`).
2. Fine-tuning: alpha (L_seg + L_ssn) on labelled + lambda(t) L_align (Eq. 4) on unlabelled volumes against the
   teacher's masks; AdamW (paper: 7.5k iterations at lr 1e-5; ours: `finetune_steps` at `lr_finetune`).  The teacher's
   start prompt (ours): by default (`teacher_start=centre`) a centred 16 x 16 box on the middle slice, since the ROI is
   centred on the lesion (lidc-crops64 crops by construction, the app's ROI by the user's prompt), so the masks are
   computed once; `teacher_start=student` prompts from the VNet's own prediction as the paper does ("where the two
   models disagreed in the prior iteration"), recomputed `refreshes` times in phase 2.  Measured in models/upsam.md:
   the VNet's boxes after pre-training gave the teacher a far lower Dice than the centred box, and refreshing from the
   VNet fed its over-segmentation back into the targets.

L_ssn (ours, following Monteiro 2020 and FUSSNet): Eq. 3's SSN likelihood on the labelled volumes against one rater
drawn per volume and step, so the low-rank covariance learns the raters' disagreement (the paper's Eq. 5 lists no SSN
term on labelled data; a deterministic teacher mask alone cannot teach disagreement).  The four heads learn the 50 %
consensus.  Semi=0 runs phases 1-2 without the teacher and without L_align (same steps, same optimisers).

Seeded and deterministic on the CPU.  The last weights are kept (no model selection on `validate`); a checkpoint is
written at each phase end and every `save_every` steps (record `final: false`), so Ctrl+C / SIGTERM leaves one behind.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..paths import models_dir, shared_data_dir
from ..uncertainty.metrics import ged
from ..uncertainty.surface import dice as dice_score
from .base import ModelError, checked_checkpoint_path, select_device
from .lidc import NoduleStack, check_split, load_split, nodule_stacks
from .upsam import CHANNELS_LAST, ENGINE_FAMILY, UpSamConfig, UpSamEngine, save_checkpoint
from .upsam_data import Split, centred_input, dihedral, random_window, split_labelled
from .upsam_losses import ALPHA, align_loss, cross_entropy, gaussian_rampup, sam_loss, seg_loss, ssn_nll
from .upsam_net import UpSamNet, UpSamNetConfig, antithetic_logits, pad_depth, parameter_count
from .upsam_teacher import (
    DEFAULT_MARGIN,
    FrozenDecoderPart,
    SliceSamTeacher,
    build_teacher,
    central_start,
    mask_box,
    start_from_prediction,
)
from .trainers import stop_on_sigterm, typed_options

if TYPE_CHECKING:
    from .trainers import TrainRequest


@dataclass
class TrainOptions:
    data: Path
    out: Path
    labelled: int = 4
    semi: bool = True
    seed: int = 0
    device: str | None = None
    limit: int | None = None
    threads: int | None = None
    teacher: str = "litemedsam"
    min_labelled_slices: int = 3
    sam_steps: int = 60
    pretrain_steps: int = 800
    finetune_steps: int = 1600
    teacher_start: str = "centre"
    centre_box: float = 0.25
    refreshes: int = 2         # only with teacher_start=student: centre starts do not depend on the VNet (once)
    train_depth: int = 8
    labelled_batch: int = 2
    unlabelled_batch: int = 2
    mc_samples: int = 20
    lr_sam: float = 3e-4
    lr_pretrain: float = 1e-3
    lr_finetune: float = 1e-4
    rampup: float = 0.5        # share of phase 2 over which lambda ramps up to 1
    margin: float = DEFAULT_MARGIN
    save_every: int = 200
    teacher_check: bool = True  # log the teacher's validation Dice (oracle start box) before and after L_sam
    log_every: int = 50
    val_samples: int = 16
    # Weight of a cross-entropy on the SSN mean itself (ours; 0 = the paper's and Monteiro's losses only).  The SSN
    # likelihood is met when *some* of the Monte Carlo draws cover the nodule, so with few labels its mean can stay
    # at background and the spread do the work; this term asks the mean to segment as well.
    mean_ce: float = 0.0

    def check(self) -> None:
        for name in ("labelled", "min_labelled_slices", "train_depth", "labelled_batch", "mc_samples", "save_every",
                     "log_every", "val_samples"):
            if getattr(self, name) < 1:
                raise ModelError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("sam_steps", "pretrain_steps", "finetune_steps", "refreshes", "unlabelled_batch"):
            if getattr(self, name) < 0:
                raise ModelError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.mc_samples % 2:
            raise ModelError(f"mc_samples must be even (antithetic pairs), got {self.mc_samples}")
        if self.train_depth % UpSamNetConfig().depth_multiple:
            raise ModelError(f"train_depth must be a multiple of {UpSamNetConfig().depth_multiple}")
        if self.pretrain_steps + self.finetune_steps < 1:
            raise ModelError("nothing to train: pretrain_steps + finetune_steps is 0")
        if self.semi and self.finetune_steps and (self.refreshes < 1 or self.unlabelled_batch < 1):
            raise ModelError("semi-supervised fine-tuning needs refreshes >= 1 and unlabelled_batch >= 1")
        if self.teacher_start not in START_MODES:
            raise ModelError(f"teacher_start must be one of {', '.join(START_MODES)}, got {self.teacher_start!r}")
        if not self.mean_ce >= 0.0:
            raise ModelError(f"mean_ce must not be negative, got {self.mean_ce}")
        if not 0.0 < self.centre_box <= 1.0:
            raise ModelError(f"centre_box must lie in (0, 1], got {self.centre_box}")


# ------------------------------------------------------------------------------------------------------- batches


@dataclass
class Batch:
    image: torch.Tensor      # (B, 1, D, H, W)
    label: torch.Tensor      # (B, D, H, W) consensus (labelled) or teacher mask (unlabelled)
    rater: torch.Tensor      # (B, D, H, W) one rater's mask (labelled), else the label again
    valid: torch.Tensor      # (B, D, H, W)


def _window_sample(stack: NoduleStack, target: np.ndarray, rater: np.ndarray, depth: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    window = random_window(len(stack.slice_indices), depth, rng)
    code = int(rng.integers(8))
    placed = [dihedral(window.place(a), code) for a in (stack.scans, target, rater)]
    valid = np.broadcast_to(window.valid()[:, None, None], placed[0].shape)  # in window coordinates already
    return tuple(np.ascontiguousarray(a) for a in (*placed, valid))


def labelled_batch(stacks: list[NoduleStack], size: int, depth: int, rng: np.random.Generator) -> Batch:
    parts = []
    for index in rng.integers(len(stacks), size=size):
        stack = stacks[int(index)]
        rater = stack.raters[:, int(rng.integers(stack.raters.shape[1]))]
        parts.append(_window_sample(stack, stack.gt, rater, depth, rng))
    return _collate(parts)


def unlabelled_batch(stacks: list[NoduleStack], teacher_masks: list[np.ndarray], size: int, depth: int,
                     rng: np.random.Generator) -> Batch:
    parts = []
    for index in rng.integers(len(stacks), size=size):
        mask = teacher_masks[int(index)]
        parts.append(_window_sample(stacks[int(index)], mask, mask, depth, rng))
    return _collate(parts)


def _collate(parts) -> Batch:
    image, label, rater, valid = (np.stack(a) for a in zip(*parts))
    return Batch(torch.from_numpy(image.astype(np.float32))[:, None], torch.from_numpy(label.astype(np.int64)),
                 torch.from_numpy(rater.astype(np.int64)), torch.from_numpy(valid.astype(np.float32)))


# ------------------------------------------------------------------------------------------------------- teacher


START_MODES = ("centre", "student")


def teacher_targets(teacher, net: UpSamNet, stacks: list[NoduleStack], embeddings: list[torch.Tensor],
                    device: torch.device, options: TrainOptions) -> tuple[list[np.ndarray], dict]:
    """Teacher masks (L, H, W) of the unlabelled stacks.  Start prompt on the middle slice: `centre` = a centred box
    of `centre_box` of the crop's side; `student` = the box of the VNet's predicted component nearest the centre
    (the central box when the VNet predicts nothing there)."""
    starts, fallbacks = [], 0
    shape = tuple(stacks[0].scans.shape[1:])
    net.eval()
    with torch.inference_mode():
        for stack in stacks:
            depth = len(stack.slice_indices)
            start = None
            if options.teacher_start == "student":
                x, _ = pad_depth(torch.from_numpy(stack.scans)[None, None].to(device), net.config.depth_multiple)
                out = net(x.contiguous(memory_format=CHANNELS_LAST))
                start = start_from_prediction(out.epistemic()[0, 1, :depth].float().cpu().numpy(), options.margin)
                fallbacks += start is None
            starts.append(start or central_start(depth, shape, options.centre_box))
    net.train()
    masks = teacher.segment_stacks(embeddings, starts, shape)
    stats = {"stacks": len(stacks), "start": options.teacher_start, "central_fallbacks": fallbacks,
             "empty_masks": int(sum(not m.any() for m in masks)),
             "mean_voxels": float(np.mean([m.sum() for m in masks]))}
    return masks, stats


def teacher_dice(teacher, stacks: list[NoduleStack], margin: float) -> float:
    """Mean 3D Dice of the teacher against the consensus, started from the consensus box of each stack's largest
    slice (an oracle prompt: it shows what the teacher can do, not what it does from the VNet's boxes)."""
    starts = []
    for stack in stacks:
        z = int(np.argmax(stack.gt.reshape(len(stack.gt), -1).sum(axis=1)))
        starts.append((z, mask_box(stack.gt[z], margin, stack.gt.shape[1:])))
    masks = teacher.segment_stacks([teacher.embeddings(s.scans) for s in stacks], starts,
                                   tuple(stacks[0].scans.shape[1:]))
    return float(np.mean([dice_score(m, s.gt) for m, s in zip(masks, stacks)]))


def finetune_teacher(teacher: SliceSamTeacher, stacks: list[NoduleStack], options: TrainOptions,
                     log: Callable[[str], None]) -> list[float]:
    """Phase 0: L_sam on every labelled slice (consensus box grown by the margin); returns the loss per log window."""
    params = teacher.tuned_parameters()
    crop_hw = tuple(stacks[0].scans.shape[1:])
    srcs, tokens, labels = [], [], []
    for stack in stacks:
        emb = teacher.embeddings(stack.scans)
        boxes = [mask_box(gt, options.margin, crop_hw) for gt in stack.gt]
        keep = [i for i, b in enumerate(boxes) if b is not None]
        for i in range(0, len(keep), teacher.batch):
            idx = keep[i:i + teacher.batch]
            part = teacher.frozen_part(emb[idx], [boxes[j] for j in idx], crop_hw)
            srcs.append(part.src.half())
            tokens.append(part.token)
            labels.append(torch.from_numpy(stack.gt[idx]))
    src, token, label = torch.cat(srcs), torch.cat(tokens), torch.cat(labels).to(teacher.device)
    optimiser = torch.optim.AdamW(params, lr=options.lr_sam)
    rng = np.random.default_rng([options.seed, 11])
    history, window = [], []
    for step in range(1, options.sam_steps + 1):
        idx = torch.from_numpy(rng.choice(len(label), size=min(4, len(label)), replace=False))
        logits = teacher.tuned_logits(FrozenDecoderPart(src[idx].float(), token[idx]), crop_hw)
        loss = ALPHA * sam_loss(logits, label[idx])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        window.append(loss.item() / ALPHA)
        if step % options.log_every == 0 or step == options.sam_steps:
            history.append(float(np.mean(window)))
            log(f"teacher step {step:4d}  L_sam {history[-1]:.4f}")
            window = []
    for p in params:
        p.grad = None
    return history


# ------------------------------------------------------------------------------------------------------ training


def _split_dir(data: Path, split: str) -> Path:
    if not Path(data).is_dir():
        raise ModelError(f"{data}: no such folder (expected the lidc-crops64 root with train/ and validate/)")
    return check_split(Path(data) / split)


def train(options: TrainOptions, log: Callable[[str], None] = print, command: str = "") -> dict:
    """Run the phases, write the checkpoint; returns the training record."""
    options.check()
    if options.threads:
        torch.set_num_threads(options.threads)
    device = select_device(options.device)
    torch.manual_seed(options.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    train_items = load_split(_split_dir(options.data, "train"), options.limit)
    val_items = load_split(_split_dir(options.data, "validate"), options.limit)
    split = split_labelled(train_items, options.labelled, options.seed, options.min_labelled_slices)
    if options.semi and not split.unlabelled:
        raise ModelError("no unlabelled nodules left for semi-supervised training (use fewer labelled or semi=0)")
    log(f"labelled nodules {split.labelled_nodules} ({len(split.labelled)} stacks, "
        f"{sum(len(s.slice_indices) for s in split.labelled)} slices); unlabelled {len(split.unlabelled)} stacks "
        f"({sum(len(s.slice_indices) for s in split.unlabelled)} slices){'' if options.semi else ' [not used]'}; "
        f"device {device}, threads {torch.get_num_threads()}")

    config = UpSamConfig()
    net = UpSamNet(config.net).to(device, memory_format=CHANNELS_LAST)
    record = {"options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
              "labelled_nodules": split.labelled_nodules, "labelled_slices": sum(len(s.slice_indices)
                                                                                  for s in split.labelled),
              "unlabelled_stacks": len(split.unlabelled) if options.semi else 0, "parameters": parameter_count(net),
              "device": str(device), "threads": torch.get_num_threads(), "command": command, "history": [],
              "teacher_refreshes": [], "final": False, "stopped_early": False}
    started = time.monotonic()
    run = _Run(options, config, net, split, device, record, started, log, val_items)
    with stop_on_sigterm():
        try:
            run.all_phases()
        except KeyboardInterrupt:  # Ctrl+C or SIGTERM: keep the weights so far, say so in the record
            record["stopped_early"] = True
            log(f"stopped at step {run.step}; writing the weights so far")
    record["steps_run"] = run.step
    record["seconds"] = round(time.monotonic() - started, 1)
    if not record["stopped_early"]:
        record["validation"] = quick_validation(net, config, val_items, options, device)
        log("validate: " + ", ".join(f"{k} {v:.4f}" for k, v in record["validation"].items() if isinstance(v, float)))
    record["final"] = not record["stopped_early"]
    run.save()
    log(f"wrote {options.out} ({record['seconds']:.0f} s)")
    return record


class _Run:
    """The state of one training run, phase by phase."""

    def __init__(self, options: TrainOptions, config: UpSamConfig, net: UpSamNet, split: Split,
                 device: torch.device, record: dict, started: float, log: Callable[[str], None],
                 val_items: list | None = None) -> None:
        self.options, self.config, self.net, self.split = options, config, net, split
        self.val_stacks = nodule_stacks(val_items or [], min_slices=1)
        self.device, self.record, self.started, self.log = device, record, started, log
        self.step = 0
        self.teacher = None
        self.teacher_spec = ""
        self.generator = torch.Generator().manual_seed(options.seed)

    def save(self) -> None:
        state = self.teacher.tuned_state() if isinstance(self.teacher, SliceSamTeacher) else None
        save_checkpoint(self.options.out, self.net, self.config, self.record, teacher_state=state,
                        teacher=self.teacher_spec)

    def all_phases(self) -> None:
        o = self.options
        if o.semi:  # the VNet alone (semi=0) needs no teacher
            from .embedding_cache import EmbeddingCache
            from .sam_backbone import load_backbone

            self.teacher = build_teacher(o.teacher, load_backbone, self.device, EmbeddingCache(), o.margin)
            sha = getattr(getattr(self.teacher, "backbone", None), "sha256", "")
            self.teacher_spec = f"{self.teacher.name} {o.teacher}" + (f" sha256:{sha}" if sha else "")
        check = isinstance(self.teacher, SliceSamTeacher) and o.teacher_check and self.val_stacks
        if check:
            self._teacher_check("zero_shot")
        if o.semi and o.sam_steps:
            if not isinstance(self.teacher, SliceSamTeacher):
                raise ModelError("L_sam fine-tuning is supported with the LiteMedSAM teacher only; "
                                 "set sam_steps=0 for the SAM-Med3D teacher")
            self.record["sam_history"] = finetune_teacher(self.teacher, self.split.labelled, o, self.log)
            if check:
                self._teacher_check("tuned")
        adam = torch.optim.Adam(self.net.parameters(), lr=o.lr_pretrain)
        for _ in range(o.pretrain_steps):
            self._step(adam, phase=1)
        self.save()
        if not o.finetune_steps:
            return
        adamw = torch.optim.AdamW(self.net.parameters(), lr=o.lr_finetune)
        refreshes = (o.refreshes if o.teacher_start == "student" else 1) if o.semi else 0
        refresh_at = {int(i * o.finetune_steps / refreshes) for i in range(refreshes)}
        embeddings = [self.teacher.embeddings(s.scans) for s in self.split.unlabelled] if o.semi else []
        self.targets: list[np.ndarray] = []
        for k in range(o.finetune_steps):
            if k in refresh_at:
                t = time.monotonic()
                self.targets, stats = teacher_targets(self.teacher, self.net, self.split.unlabelled, embeddings,
                                                      self.device, o)
                stats.update(at_step=self.step, seconds=round(time.monotonic() - t, 1))
                self.record["teacher_refreshes"].append(stats)
                self.log(f"teacher masks refreshed at step {self.step}: {stats}")
            lam = gaussian_rampup(k, int(o.rampup * o.finetune_steps)) if o.semi else 0.0
            self._step(adamw, phase=2, lam=lam)

    def _teacher_check(self, when: str) -> None:
        value = teacher_dice(self.teacher, self.val_stacks, self.options.margin)
        self.record.setdefault("teacher_validation_dice_oracle_box", {})[when] = round(value, 4)
        self.log(f"teacher ({when}) on validate, started from the consensus box: Dice {value:.4f}")

    def _step(self, optimiser: torch.optim.Optimizer, phase: int, lam: float = 0.0) -> None:
        o = self.options
        self.step += 1
        rng = np.random.default_rng([o.seed, self.step])
        lab = labelled_batch(self.split.labelled, o.labelled_batch, o.train_depth, rng)
        batches = [lab]
        if phase == 2 and o.semi:
            batches.append(unlabelled_batch(self.split.unlabelled, self.targets, o.unlabelled_batch, o.train_depth,
                                            rng))
        image = torch.cat([b.image for b in batches]).to(self.device).contiguous(memory_format=CHANNELS_LAST)
        out = self.net(image)
        samples = antithetic_logits(out, o.mc_samples, self.generator, self.net.config.diag_eps)
        nl = lab.image.shape[0]
        label, rater, valid = (t.to(self.device) for t in (lab.label, lab.rater, lab.valid))
        l_seg, head_terms = seg_loss(out.heads[:nl], label, valid)
        l_ssn = ssn_nll(samples[:, :nl], rater, valid)
        loss = ALPHA * (l_seg + l_ssn)
        if o.mean_ce:
            loss = loss + ALPHA * o.mean_ce * cross_entropy(out.mean[:nl], label, valid)
        l_align = torch.zeros(())
        if len(batches) > 1:
            u = batches[1]
            u_label, u_valid = u.label.to(self.device), u.valid.to(self.device)
            l_align = align_loss(samples[:, nl:], u_label, u_valid)
            loss = loss + lam * l_align
            if o.mean_ce:
                loss = loss + lam * o.mean_ce * cross_entropy(out.mean[nl:], u_label, u_valid)
        if not torch.isfinite(loss):
            raise ModelError(f"training diverged at step {self.step} (loss {loss.item()}); try a lower learning rate")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        self._log(phase, loss.item(), l_seg.item(), head_terms, l_ssn.item(), l_align.item(), lam)
        if self.step % o.save_every == 0:
            self.save()

    def _log(self, phase: int, loss: float, l_seg: float, heads: list[float], l_ssn: float, l_align: float,
             lam: float) -> None:
        window = self.__dict__.setdefault("_window", [])
        window.append([loss, l_seg, *heads, l_ssn, l_align])
        if self.step % self.options.log_every:
            return
        mean = np.mean(window, axis=0)
        window.clear()
        entry = {"step": self.step, "phase": phase, "loss": mean[0], "seg": mean[1], "ce": mean[2], "dice": mean[3],
                 "iou": mean[4], "focal": mean[5], "ssn": mean[6], "align": mean[7], "lambda": lam,
                 "seconds": round(time.monotonic() - self.started, 1)}
        self.record["history"].append({k: (round(float(v), 5) if isinstance(v, float | np.floating) else v)
                                       for k, v in entry.items()})
        self.log(f"step {self.step:5d} (phase {phase})  loss {mean[0]:.4f}  seg {mean[1]:.4f}  ssn {mean[6]:.4f}  "
                 f"align {mean[7]:.4f}  lambda {lam:.3f}  {entry['seconds']:7.0f} s")


def quick_validation(net: UpSamNet, config: UpSamConfig, items, options: TrainOptions,
                     device: torch.device) -> dict:
    """Mean over the validate nodule stacks: Dice of the averaged heads vs the consensus, GED of the hypotheses vs
    the raters (stacks centred in a window of roi_depth, or whole when longer; metrics on the real slices only)."""
    engine = UpSamEngine(net, config, device=device)
    dices, geds = [], []
    for index, stack in enumerate(nodule_stacks(items, min_slices=1)):
        image, keep = centred_input(stack.scans, config.roi_depth)
        state = engine.prepare(image)
        dices.append(dice_score(engine.point_prediction(state)[keep] > 0.5, stack.gt))
        probs = engine.sample(state, None, options.val_samples, seed=index)[:, keep]
        geds.append(ged(probs > 0.5, np.moveaxis(stack.raters, 1, 0)))
    net.to(device, memory_format=CHANNELS_LAST).train()
    return {"stacks": len(dices), "dice_heads": float(np.mean(dices)), "ged": float(np.mean(geds))}


# ------------------------------------------------------------------------------------------------- entry points

_OPTION_TYPES = {"labelled": int, "semi": int, "threads": int, "teacher": str, "min_labelled_slices": int,
                 "sam_steps": int, "pretrain_steps": int, "finetune_steps": int, "refreshes": int,
                 "teacher_start": str, "centre_box": float, "train_depth": int,
                 "labelled_batch": int, "unlabelled_batch": int, "mc_samples": int, "lr_sam": float,
                 "lr_pretrain": float, "lr_finetune": float, "rampup": float, "margin": float, "save_every": int,
                 "log_every": int, "val_samples": int, "teacher_check": int, "mean_ce": float}


def train_request(request: TrainRequest) -> dict:
    """Entry point of `ambiview-cli train upsam` (see trainers.py); options: see _OPTION_TYPES.

    --epochs is not used (UP-SAM counts iterations: pretrain_steps, finetune_steps); --backbone names the teacher's
    SAM-family backbone (default: the bundled LiteMedSAM)."""
    if request.epochs is not None:
        raise ModelError("UP-SAM counts iterations, not epochs: use --option pretrain_steps=N --option "
                         "finetune_steps=N instead of --epochs")
    settings = typed_options(request.options, _OPTION_TYPES, "upsam")
    for flag in ("semi", "teacher_check"):
        if flag in settings:
            settings[flag] = bool(settings[flag])
    if request.backbone:
        if "teacher" in settings:
            raise ModelError("give the teacher either with --backbone or with --option teacher=..., not both")
        settings["teacher"] = request.backbone
    out = checked_checkpoint_path(request.out)
    options = TrainOptions(data=Path(request.data), out=out, seed=request.seed, device=request.device,
                           limit=request.limit, **settings)
    return train(options, log=request.log, command=request.command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train_upsam", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="lidc-crops64 root; default: the shared data")
    parser.add_argument("--out", type=Path, default=None, help="default: models/upsam.safetensors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--limit", type=int, default=None, help="only the first N crops of each split (smoke runs)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    return parser


def main(argv: list[str] | None = None) -> int:
    from .trainers import TrainRequest

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    options = dict(part.split("=", 1) for part in args.option if "=" in part)
    request = TrainRequest(data=args.data or shared_data_dir() / "lidc-crops64",
                           out=args.out or models_dir() / f"{ENGINE_FAMILY}.safetensors", seed=args.seed,
                           device=args.device, limit=args.limit, options=options,
                           command=shlex.join(["python", "-m", "ambiview.models.train_upsam", *argv]),
                           log=lambda line: print(line, flush=True))
    try:
        train_request(request)
    except ModelError as exc:
        print(f"train_upsam: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
