"""
Train one method over many seeds at once: a vmapped ensemble (``torch.func``).

The members' weights are stacked (:func:`torch.func.stack_module_state`) and one
functional forward (:func:`torch.func.functional_call` under :func:`torch.vmap`) runs them
all in one call, so the many tiny matrix products of a small fusion head become a few
batched ones.  Every member is the run :func:`~centralnet_ros.training.trainer.train`
would make for its seed in distribution:

- the same initial weights (each model is built after seeding with its own seed);
- its own order of batches and its own augmentation draws (a generator per seed);
- its own dropout and ModDrop draws (``randomness='different'``);
- its own BatchNorm statistics (the buffers are stacked too);
- its own optimiser state (Adam and SGD act element-wise on the stacked tensors; gradient
  clipping, when set, is done per member);
- its own early stopping: a member's best epoch (or, with ``train.select: last``, its last
  epoch), and so its result, is fixed once it has gone ``patience`` epochs without a
  validation gain, even though the stacked tensors go on training until every member has stopped.

What is not reproduced: the exact random stream of an independent run (one generator
serves all members), so a member equals ``train(seed=s)`` in distribution, not bit for bit.

Where it pays is measured by ``benchmarks/bench_ensemble.py``: on CPU only for small fully
connected models (the feature presets); convolutional models gain little or nothing.
"""
from __future__ import annotations

import copy
import time
from typing import Sequence

from centralnet_ros.evaluation.metrics import compute_metric
from centralnet_ros.fusion import FusionModel, task_loss
from centralnet_ros.fusion.base import ModalityDropout
from centralnet_ros.torch_utils import resolve_device, seed_everything
from centralnet_ros.training.trainer import (_batches, _schedule, ArraySplit, Augment, fit, make_optimizer, TrainConfig,
                                             TrainResult)
import numpy as np
import torch
from torch.func import functional_call, stack_module_state


def train_ensemble(models: Sequence[FusionModel], seeds: Sequence[int], train_split: ArraySplit,
                   val_split: ArraySplit, cfg: TrainConfig, *, test_split: ArraySplit | None = None,
                   augment: Augment | None = None, task: str = 'multiclass',
                   desc: str = 'ensemble') -> list[TrainResult]:
    """
    Train ``models`` (one per seed, same architecture, built after seeding) together; one result per member.

    Each :class:`TrainResult` holds the member's best validation epoch, its test metric and
    history as :func:`~centralnet_ros.training.trainer.train` reports them; ``wall_time_s``
    is the ensemble's wall time divided by the number of members, and ``state_dict`` the
    member's weights at its best epoch (``models[i]`` is left holding them too).
    """
    if len(models) != len(seeds) or not models:
        raise ValueError(f'train_ensemble needs one model per seed, got {len(models)} models and {len(seeds)} seeds')
    if len({type(m) for m in models}) != 1:
        raise ValueError('train_ensemble needs models of one architecture, got '
                         f'{sorted({type(m).__name__ for m in models})}')
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device)
    members = len(models)
    for m in models:
        m.to(device).train()          # one mode for all (stack_module_state insists); base's mode is set per phase
    start = time.perf_counter()
    seed_everything(seeds[0])
    rngs = [np.random.default_rng(s) for s in seeds]
    params, buffers = stack_module_state(list(models))
    base = copy.deepcopy(models[0]).to('meta')
    for module in base.modules():
        if isinstance(module, ModalityDropout):
            module.branch_free = True          # vmap cannot follow a branch on the data
    fusion_names = _fusion_weight_names(models[0])
    groups = [{'params': [p for n, p in params.items() if n not in fusion_names]}]
    if fusion_names:
        groups.append({'params': [p for n, p in params.items() if n in fusion_names], 'weight_decay': 0.0,
                       'lr': cfg.fusion_weight_lr or cfg.lr})
    optimizer = make_optimizer(groups, optimizer=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                               momentum=cfg.momentum)
    scheduler = _schedule(optimizer, cfg)
    labels_dtype = torch.long if task == 'multiclass' else torch.float32
    num_classes = models[0].num_classes

    def member_loss(p, b, x, y):
        out = functional_call(base, (p, b), (x,))
        fused = task_loss(out.logits, y, task)
        total = cfg.central_loss_weight * fused
        parts = {'fused': fused}
        for name, logits in out.unimodal.items():
            loss = task_loss(logits, y, task)
            total = total + cfg.unimodal_loss_weight * loss
            parts[name] = loss
        return total, parts

    train_step = torch.vmap(member_loss, randomness='different')

    def logits_of(p, b, x):
        return functional_call(base, (p, b), (x,)).logits

    predict_all = torch.vmap(logits_of, in_dims=(0, 0, None))

    @torch.no_grad()
    def predict(split: ArraySplit, p=None, b=None) -> np.ndarray:      # (members, N, classes)
        base.eval()
        out = []
        for s in range(0, len(split), 256):
            x = {m: torch.as_tensor(np.ascontiguousarray(v[s:s + 256]), dtype=torch.float32, device=device)
                 for m, v in split.inputs.items()}
            out.append(predict_all(params if p is None else p, buffers if b is None else b, x).cpu().numpy())
        return np.concatenate(out, axis=1)

    histories: list[list[dict]] = [[] for _ in range(members)]
    best_score = np.full(members, -np.inf)        # the kept epoch's validation score (see cfg.select)
    top = np.full(members, -np.inf)               # the best validation score so far (early stopping)
    best_epoch = np.zeros(members, int)
    stale = np.zeros(members, int)
    stopped = np.zeros(members, bool)
    best_params = {n: t.detach().clone() for n, t in params.items()}
    best_buffers = {n: t.detach().clone() for n, t in buffers.items()}
    totals: dict[str, np.ndarray] = {}            # this epoch's per-member loss sums ('' the total), and seen

    def batches():
        totals.clear()
        totals['seen'] = np.zeros(1)
        plans = [_batches(len(train_split), cfg.batch_size, rng,
                          train_split.labels if cfg.class_balanced_batches else None, num_classes) for rng in rngs]
        for step in range(len(plans[0])):
            yield [plan[step] for plan in plans]

    def step(indices):
        xs, ys = [], []
        for index, rng in zip(indices, rngs):
            inputs = {m: v[index] for m, v in train_split.inputs.items()}
            if augment is not None:
                inputs = augment(inputs, rng)
            xs.append(inputs)
            ys.append(train_split.labels[index])
        x = {m: torch.as_tensor(np.stack([inp[m] for inp in xs]), dtype=torch.float32, device=device)
             for m in xs[0]}
        y = torch.as_tensor(np.stack(ys), dtype=labels_dtype, device=device)
        loss, parts = train_step(params, buffers, x, y)
        size = y.shape[1]
        for k, v in [('', loss)] + list(parts.items()):
            totals[k] = totals.get(k, 0.0) + v.detach().cpu().numpy() * size
        totals['seen'] += size
        return loss.sum(), size, {}                  # members share no weight: each gets its own gradient

    def end_of_epoch(record: dict) -> bool:
        t0 = time.perf_counter()
        val_logits = predict(val_split)
        seconds = record['seconds'] + time.perf_counter() - t0
        seen = max(float(totals['seen'][0]), 1.0)
        for i in np.flatnonzero(~stopped):
            score = compute_metric(cfg.metric, val_logits[i], val_split.labels, num_classes)
            member = {'epoch': record['epoch'], 'loss': float(totals[''][i] / seen), 'lr': record['lr'],
                      'loss_parts': {k: float(v[i] / seen) for k, v in totals.items() if k not in ('', 'seen')},
                      f'val_{cfg.metric}': score, 'seconds': seconds / members}
            improved = score > top[i]
            top[i], stale[i] = (score, 0) if improved else (top[i], stale[i] + 1)
            if improved or cfg.select == 'last':     # the weights kept: the best epoch's, or the last epoch's
                best_score[i], best_epoch[i] = score, record['epoch']
                with torch.no_grad():
                    for n, t in params.items():
                        best_params[n][i] = t[i]
                    for n, t in buffers.items():
                        best_buffers[n][i] = t[i]
            weights = _member_fusion_weights(models[i], params, i, fusion_names)
            if weights is not None:
                member['fusion_weights'] = weights
            histories[i].append(member)
            if cfg.patience and stale[i] >= cfg.patience:
                stopped[i] = True
        return bool(stopped.all())

    clip = (lambda ps: _clip_per_member(ps, cfg.grad_clip)) if cfg.grad_clip > 0 else 0.0
    fit(base, epochs=cfg.epochs, batches=batches, step=step, optimizer=optimizer, scheduler=scheduler,
        train_mode=base.train, grad_clip=clip, end_of_epoch=end_of_epoch, progress=cfg.progress, desc=desc)
    test_logits = predict(test_split, best_params, best_buffers) if test_split is not None else None
    wall = (time.perf_counter() - start) / members
    results = []
    for i, model in enumerate(models):
        state = _load_member(model, best_params, best_buffers, i)
        test_metric = None
        if test_logits is not None:
            test_metric = compute_metric(cfg.metric, test_logits[i], test_split.labels, num_classes)
        results.append(TrainResult(best_epoch=int(best_epoch[i]), val_metric=float(best_score[i]),
                                   test_metric=test_metric, history=histories[i], wall_time_s=wall,
                                   epochs_run=len(histories[i]), state_dict=state,
                                   test_logits=None if test_logits is None else test_logits[i]))
    return results


def _fusion_weight_names(model: FusionModel) -> set[str]:
    ids = {id(p) for p in model.fusion_weight_parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


@torch.no_grad()
def _member_fusion_weights(model: FusionModel, params: dict[str, torch.Tensor], i: int,
                           names: set[str]) -> dict | None:
    if not names:
        return None
    own = dict(model.named_parameters())
    for n in names:
        own[n].copy_(params[n][i])
    return model.fusion_weights()


@torch.no_grad()
def _load_member(model: FusionModel, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                 i: int) -> dict[str, torch.Tensor]:
    own = dict(model.named_parameters()) | dict(model.named_buffers())
    for n, t in (params | buffers).items():
        own[n].copy_(t[i])
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _clip_per_member(params: list[torch.Tensor], max_norm: float) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    norms = torch.sqrt(sum(g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads))      # (members,)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
