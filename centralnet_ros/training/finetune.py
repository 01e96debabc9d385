"""
Fine-tuning a shipped bundle on samples from the robot's own recordings.

The samples (:class:`~centralnet_ros.replay.samples.Sample`: model inputs recorded
from the runtime at labelled decisions) are grouped into sessions (one per bag); this
module turns them into :class:`~centralnet_ros.training.trainer.ArraySplit` s, adapts
the model and trains it with the one trainer (:func:`~centralnet_ros.training.trainer.train`).

Modes (:data:`MODES`):

* ``whole``: every weight is trained (same labels as the bundle);
* ``head``: only the classification heads (the layers whose shape depends on the
  number of classes: each modality's head and CentralNet's central head) are trained;
* ``new_labels``: a new label set (a new vocabulary): the model is rebuilt with new
  heads for the new classes, every other weight is copied from the bundle; with
  ``freeze_encoders`` the per-modality encoders stay fixed.

A modality that none of the samples carries (e.g. the lips of an audio-only
recording) is left out of training altogether: its encoder is frozen and kept in
evaluation mode (its BatchNorm statistics are not touched), and the model learns with
it marked absent, as the runtime feeds it. Frozen parts are kept in evaluation mode in
every mode.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator, Literal, Sequence

from centralnet_ros.fusion import build_model, FusionModel
from centralnet_ros.training.trainer import ArraySplit, Augment, predict, train, TrainConfig, TrainResult
import numpy as np
import torch
from torch import nn

__all__ = ['MODES', 'FinetuneConfig', 'head_parameter_names', 'adapt_model', 'l2_sp_penalty', 'interpolate_weights',
           'to_split', 'common_modalities', 'FinetuneResult', 'finetune', 'accuracy_of']

MODES = ('whole', 'head', 'new_labels')


@dataclasses.dataclass
class FinetuneConfig:
    """What to train and how (the trainer's settings are a :class:`TrainConfig`)."""

    mode: Literal['whole', 'head', 'new_labels'] = 'whole'
    freeze_encoders: bool = False            # new_labels: keep the per-modality encoders fixed
    labels: list[str] | None = None          # new_labels: the new classes (default: sorted labels of the samples)
    keep_batch_norm: bool = False            # BatchNorm layers keep the bundle's running statistics (eval mode)
    freeze_modalities: tuple[str, ...] = ()  # whole / new_labels: these modalities' encoders stay fixed
    l2_sp: float = 0.0                       # L2-SP: + l2_sp / 2 * sum ||w - w_bundle||^2 over the trained weights
    head_warmup_epochs: int = 0              # new_labels: first train only the new heads this long (LP-FT)
    freeze_encoder_levels: int = 0           # the first this many levels of every encoder stay fixed
    interpolation: float = 1.0               # keep this fraction of the weights' change (WiSE-FT; 1: all of it)
    seed: int = 0
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        epochs=40, batch_size=32, lr=5e-4, patience=8, schedule='cosine', num_threads=1))

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {self.mode!r}')
        if self.freeze_encoders and self.mode != 'new_labels':
            raise ValueError('freeze_encoders goes with mode new_labels (head freezes everything but the heads)')
        self.freeze_modalities = tuple(self.freeze_modalities)
        if not self.l2_sp >= 0:
            raise ValueError(f'l2_sp must be >= 0, got {self.l2_sp}')
        if not 0.0 < self.interpolation <= 1.0 or (self.interpolation != 1.0 and self.mode == 'new_labels'):
            raise ValueError(f'interpolation must be in (0, 1] (modes whole and head: a new head has no bundle '
                             f'weights to return to), got {self.interpolation} with mode {self.mode}')
        if self.head_warmup_epochs < 0 or (self.head_warmup_epochs and self.mode != 'new_labels'):
            raise ValueError(f'head_warmup_epochs (>= 0, got {self.head_warmup_epochs}) goes with mode new_labels')
        if self.freeze_encoder_levels < 0:
            raise ValueError(f'freeze_encoder_levels must be >= 0, got {self.freeze_encoder_levels}')


def head_parameter_names(model: FusionModel) -> set[str]:
    """Names of the parameters whose shape depends on the number of classes (the classification heads)."""
    other = build_model(dataclasses.replace(model.config, num_classes=model.config.num_classes + 1))
    theirs = dict(other.named_parameters())
    return {name for name, p in model.named_parameters() if tuple(theirs[name].shape) != tuple(p.shape)}


def _encoder_prefix(modality: str) -> str:
    return f'encoders.{modality}.'


def adapt_model(base: FusionModel, cfg: FinetuneConfig, *, num_classes: int,
                absent: Sequence[str] = ()) -> tuple[FusionModel, list[str]]:
    """
    Return ``(model, frozen parameter names)``: a copy of ``base`` set up for ``cfg.mode``.

    ``new_labels`` rebuilds the architecture with ``num_classes`` outputs and copies
    every weight whose shape still fits (all but the heads). ``absent``: modalities no
    sample carries; their encoders are frozen, as are those of ``cfg.freeze_modalities``
    (their heads, which depend on the classes, too, except in ``new_labels``).
    """
    unknown = [m for m in cfg.freeze_modalities if m not in base.modalities]
    if unknown:
        raise ValueError(f'freeze_modalities {unknown}: the model has modalities {list(base.modalities)}')
    config = dataclasses.replace(base.config, num_classes=int(num_classes))
    if cfg.mode != 'new_labels' and num_classes != base.config.num_classes:
        raise ValueError(f"mode {cfg.mode} keeps the bundle's {base.config.num_classes} classes; use "
                         f'new_labels for a label set of {num_classes}')
    torch.manual_seed(cfg.seed)                                  # the new heads' initial weights
    model = build_model(config)
    state = model.state_dict()
    for name, value in base.state_dict().items():
        if name in state and tuple(state[name].shape) == tuple(value.shape):
            state[name] = value.detach().clone()
    model.load_state_dict(state)
    heads = head_parameter_names(model)
    frozen = set()
    if cfg.freeze_encoder_levels:
        for m, encoder in model.encoders.items():
            levels = getattr(encoder, 'levels', None)
            if levels is None or cfg.freeze_encoder_levels > len(levels):
                raise ValueError(f'freeze_encoder_levels {cfg.freeze_encoder_levels}: the {m} encoder has '
                                 f'{"no levels" if levels is None else f"{len(levels)} levels"}')
            for i in range(cfg.freeze_encoder_levels):
                frozen |= {f'{_encoder_prefix(m)}levels.{i}.{n}' for n, _ in levels[i].named_parameters()}
    for name, p in model.named_parameters():
        if cfg.mode == 'head' and name not in heads:
            frozen.add(name)
        if cfg.freeze_encoders and name.startswith('encoders.') and name not in heads:
            frozen.add(name)
        if any(name.startswith(_encoder_prefix(m)) for m in absent):
            frozen.add(name)
        if any(name.startswith(_encoder_prefix(m)) for m in cfg.freeze_modalities) and (
                cfg.mode != 'new_labels' or name not in heads):
            frozen.add(name)
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen)
    return model, sorted(frozen)


def l2_sp_penalty(model: nn.Module, start: dict[str, torch.Tensor], weight: float):
    """
    Return the L2-SP penalty (Li et al. 2018) of ``model``: ``weight / 2 * sum ||w - start[name]||^2``.

    Over the parameters that are trained and have a starting value of the same shape in
    ``start`` (the bundle's; a new head has none and is left free).
    """
    pairs = [(p, start[n]) for n, p in model.named_parameters()
             if p.requires_grad and n in start and tuple(start[n].shape) == tuple(p.shape)]

    def penalty() -> torch.Tensor:
        return 0.5 * weight * sum(((p - w0) ** 2).sum() for p, w0 in pairs)
    return penalty


def interpolate_weights(base: FusionModel, tuned: FusionModel, alpha: float) -> FusionModel:
    """
    Return a copy of ``tuned`` whose weights are ``base + alpha * (tuned - base)`` (WiSE-FT, Wortsman et al. 2022).

    Every floating-point parameter and buffer with a counterpart of the same shape in
    ``base`` is interpolated (others, e.g. a new head, are ``tuned``'s); ``alpha`` 1 is
    ``tuned``, 0 the bundle. Neither model is modified.
    """
    start = base.state_dict()
    state = {}
    for name, value in tuned.state_dict().items():
        w0 = start.get(name)
        if w0 is not None and value.is_floating_point() and tuple(w0.shape) == tuple(value.shape):
            value = w0 + alpha * (value - w0)
        state[name] = value.detach().clone()
    model = build_model(tuned.config)
    model.load_state_dict(state)
    model.eval()
    return model


@contextlib.contextmanager
def _frozen_in_eval(model: nn.Module, *, batch_norm: bool = False) -> Iterator[None]:
    """
    While active, ``model.train()`` leaves every module whose parameters are all frozen in eval mode.

    ``batch_norm``: every BatchNorm layer too (it keeps its running statistics).
    """
    frozen = []
    for name, module in model.named_modules():
        params = list(module.parameters())
        if name and params and not any(p.requires_grad for p in params):
            if not any(name.startswith(f + '.') for f in frozen):
                frozen.append(name)
        elif batch_norm and isinstance(module, nn.modules.batchnorm._BatchNorm):
            frozen.append(name)
    modules = dict(model.named_modules())

    def train_mode(mode: bool = True) -> nn.Module:
        nn.Module.train(model, mode)
        for f in frozen:
            modules[f].eval()
        return model

    model.train = train_mode
    try:
        yield
    finally:
        del model.train


def common_modalities(samples: Sequence, modalities: Sequence[str]) -> list[str]:
    """Modalities (in model order) that at least one sample carries."""
    return [m for m in modalities if any(m in s.inputs for s in samples)]


def to_split(samples: Sequence, labels: Sequence[str], modalities: Sequence[str]) -> tuple[ArraySplit, int]:
    """
    Stack samples into an :class:`ArraySplit` of ``modalities``; returns ``(split, dropped)``.

    Samples lacking one of ``modalities`` or labelled outside ``labels`` are dropped (counted).
    """
    index = {lab: i for i, lab in enumerate(labels)}
    keep = [s for s in samples if s.label in index and all(m in s.inputs for m in modalities)]
    if not keep:
        return ArraySplit({m: np.zeros((0, 1), np.float32) for m in modalities}, np.zeros(0, np.int64)), len(samples)
    inputs = {m: np.stack([s.inputs[m] for s in keep]).astype(np.float32) for m in modalities}
    return ArraySplit(inputs, np.asarray([index[s.label] for s in keep], np.int64)), len(samples) - len(keep)


def _joined(a: ArraySplit, b: ArraySplit, modalities: Sequence[str]) -> ArraySplit:
    return ArraySplit({m: np.concatenate([a.inputs[m], b.inputs[m]]) for m in modalities},
                      np.concatenate([a.labels, b.labels]))


def accuracy_of(model: FusionModel, split: ArraySplit) -> float | None:
    """Accuracy of ``model`` on ``split`` (None when empty); absent modalities are left out as at run time."""
    if not len(split):
        return None
    logits = predict(model, split)
    return float((logits.argmax(1) == split.labels).mean())


@dataclasses.dataclass
class FinetuneResult:
    model: FusionModel
    labels: list[str]
    modalities: list[str]                       # trained on (the others were absent and frozen)
    frozen: list[str]                           # frozen parameter names
    train: TrainResult
    before: float | None                        # held-out accuracy of the base bundle (None: new label set)
    after: float | None                         # held-out accuracy after fine-tuning
    counts: dict[str, int]                      # samples per split, dropped samples


def finetune(base: FusionModel, base_labels: Sequence[str], train_samples: Sequence, val_samples: Sequence,
             test_samples: Sequence, cfg: FinetuneConfig, *, rehearsal: ArraySplit | None = None,
             rehearsal_val: ArraySplit | None = None, augment: Augment | None = None) -> FinetuneResult:
    """
    Fine-tune a copy of ``base`` (``base`` is not modified) and measure it before and after on the held-out samples.

    ``*_samples``: :class:`~centralnet_ros.replay.samples.Sample` s of disjoint sessions.
    ``rehearsal``: samples of the bundle's own training data (labels as indices into
    ``base_labels``, modalities those of the recordings) mixed into every epoch, so the
    model keeps what it knew (modes whole and head only); ``rehearsal_val``: the bundle's
    own validation data, joined to the validation sessions, so early stopping keeps the
    epoch that does best on the old task and the new one together.
    ``augment``: the trainer's hook on every training batch (e.g. :func:`mfcc_masking`).
    """
    if not train_samples or not val_samples:
        raise ValueError(f'{len(train_samples)} training and {len(val_samples)} validation samples: the sessions '
                         f'need runtime decisions inside labelled segments (check the labels and their time base)')
    if cfg.mode == 'new_labels':
        labels = list(cfg.labels) if cfg.labels else sorted({s.label for s in train_samples})
    else:
        labels = list(base_labels)
        unknown = sorted({s.label for s in train_samples} - set(labels))
        if unknown:
            raise ValueError(f'labels {unknown} are not classes of the bundle ({", ".join(labels)}); '
                             f'use mode new_labels for a new label set')
    if len(labels) < 2:
        raise ValueError(f'need at least 2 classes to train, got {labels}')
    modalities = common_modalities(list(train_samples), base.modalities)
    if not modalities:
        raise ValueError('no training sample carries any modality of the model')
    absent = [m for m in base.modalities if m not in modalities]
    train_split, d_train = to_split(train_samples, labels, modalities)
    val_split, d_val = to_split(val_samples, labels, modalities)
    test_split, d_test = to_split(test_samples, labels, modalities)
    if not len(train_split) or not len(val_split):
        raise ValueError(f'{len(train_split)} training and {len(val_split)} validation samples: both must be > 0 '
                         f'(check the labels and the sessions)')
    if (rehearsal is not None and len(rehearsal)) or (rehearsal_val is not None and len(rehearsal_val)):
        if cfg.mode == 'new_labels':
            raise ValueError("rehearsal keeps the bundle's classes; it does not go with new_labels")
    if rehearsal is not None and len(rehearsal):
        train_split = _joined(train_split, rehearsal, modalities)
    n_val_new = len(val_split)
    if rehearsal_val is not None and len(rehearsal_val):
        val_split = _joined(val_split, rehearsal_val, modalities)
    before = accuracy_of(base, test_split) if cfg.mode != 'new_labels' and len(test_split) else None
    model, frozen = adapt_model(base, cfg, num_classes=len(labels), absent=absent)
    regularizer = None
    if cfg.l2_sp > 0:
        start = {n: p.detach().clone() for n, p in base.named_parameters()}
        regularizer = l2_sp_penalty(model, start, cfg.l2_sp)
    warmup_s = 0.0
    if cfg.head_warmup_epochs:                       # LP-FT: the new heads learn on the bundle's features first
        heads = head_parameter_names(model)
        trained = [p for n, p in model.named_parameters() if p.requires_grad and n not in heads]
        for p in trained:
            p.requires_grad_(False)
        with _frozen_in_eval(model, batch_norm=True):
            warm = train(model, train_split, val_split,
                         dataclasses.replace(cfg.train, epochs=cfg.head_warmup_epochs, patience=0),
                         seed=cfg.seed, desc='finetune (heads first)')
        warmup_s = warm.wall_time_s
        for p in trained:
            p.requires_grad_(True)
    with _frozen_in_eval(model, batch_norm=cfg.keep_batch_norm):
        result = train(model, train_split, val_split, cfg.train, seed=cfg.seed,
                       test_split=test_split if len(test_split) else None, augment=augment,
                       desc=f'finetune ({cfg.mode})', regularizer=regularizer)
    result.wall_time_s += warmup_s
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    if cfg.interpolation != 1.0:
        model = interpolate_weights(base, model, cfg.interpolation)
        result.val_metric = accuracy_of(model, val_split)          # of the weights returned
    n_rehearsal = len(rehearsal) if rehearsal is not None else 0
    counts = {'train': len(train_split) - n_rehearsal, 'rehearsal': n_rehearsal, 'val': n_val_new,
              'rehearsal_val': len(val_split) - n_val_new, 'test': len(test_split),
              'dropped_train': d_train, 'dropped_val': d_val, 'dropped_test': d_test}
    return FinetuneResult(model=model, labels=labels, modalities=modalities, frozen=frozen, train=result,
                          before=before, after=accuracy_of(model, test_split), counts=counts)
