"""
The one training loop (:func:`fit`) and the trainer of every fusion method built on it (:func:`train`).

Adam/SGD, a learning-rate schedule, early stopping on a validation split, seeds, a
progress bar, and the fusion weights logged every epoch (the paper's Figure 3).  The
auto-encoders, the probes, the KNN-transfer fine-tuning and the fine-tuning from
recordings train with :func:`fit` too.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Any, Callable, Iterable, Literal, Mapping

from centralnet_ros.evaluation.metrics import compute_metric
from centralnet_ros.fusion import fusion_loss, FusionModel
from centralnet_ros.torch_utils import resolve_device, seed_everything
import numpy as np
import torch


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    fusion_weight_lr: float = 0.0  # learning rate of the scalar fusion weights (0: same as lr); no weight decay
    weight_decay: float = 0.0
    optimizer: Literal['adam', 'sgd'] = 'adam'
    momentum: float = 0.9
    schedule: Literal['none', 'step', 'cosine', 'exponential'] = 'cosine'
    step_size: int = 10            # epochs between decays ('step')
    gamma: float = 0.5             # decay factor ('step', 'exponential': per epoch)
    patience: int = 0              # stop after this many epochs without validation gain (0: never)
    central_loss_weight: float = 1.0
    unimodal_loss_weight: float = 1.0
    grad_clip: float = 0.0
    label_smoothing: float = 0.0   # multiclass: cross-entropy against targets smoothed by this much (0: none)
    encoder_lr_scale: float = 1.0  # the per-modality encoders' feature layers learn at lr x this (their heads at lr)
    class_balanced_batches: bool = False   # every batch holds batch_size / num_classes of each class
    metric: Literal['accuracy', 'macro_accuracy', 'micro_f1', 'macro_f1', 'weighted_f1', 'samples_f1'] = 'accuracy'
    select: Literal['best', 'last'] = 'best'   # the weights kept: the best validation epoch's, or the last epoch's
    device: str = 'cpu'
    num_threads: int = 0           # torch intra-op threads (0: leave torch's default)
    progress: bool = True
    solver: Literal['gradient', 'shrinkage_lda'] = 'gradient'
    # ^ shrinkage_lda: a linear model (one Linear layer, e.g. kind mlp with widths []) gets the closed-form
    #   linear discriminant of the training data, covariance shrunk towards its mean variance by ``shrinkage``
    shrinkage: float = 0.5
    lda_shrinkages: list[float] = dataclasses.field(default_factory=list)
    # ^ shrinkage_lda as an ensemble: one LDA per shrinkage listed here (and per lda_drop_prefixes group), their
    #   scores averaged, which is still one linear layer (empty: the single LDA of ``shrinkage``)
    lda_drop_prefixes: list[list[str]] = dataclasses.field(default_factory=list)
    # ^ ... each group a member that leaves out the input values whose names start with one of its prefixes
    #   ([]: all values); needs the names of the inputs (train(input_names=...), e.g. the emotion functionals')


@dataclasses.dataclass
class ArraySplit:
    """
    A split held in memory: ``inputs[modality]`` is (N, *shape), ``labels`` (N,) or (N, C).

    ``weights`` (N,): each sample's weight, read by the closed-form solver (``shrinkage_lda``) only;
    None: every sample counts once.
    """

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    weights: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.labels)
        for m, x in self.inputs.items():
            if len(x) != n:
                raise ValueError(f'modality {m!r} has {len(x)} samples but there are {n} labels')
        if self.weights is not None and np.shape(self.weights) != (n,):
            raise ValueError(f'weights must be one per sample ({n},), got shape {np.shape(self.weights)}')

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> 'ArraySplit':
        return ArraySplit({m: x[index] for m, x in self.inputs.items()}, self.labels[index],
                          None if self.weights is None else self.weights[index])


@dataclasses.dataclass
class TrainResult:
    best_epoch: int
    val_metric: float
    test_metric: float | None
    history: list[dict]
    wall_time_s: float
    epochs_run: int
    state_dict: dict[str, torch.Tensor] = dataclasses.field(repr=False, default_factory=dict)
    test_logits: np.ndarray | None = dataclasses.field(repr=False, default=None)


Augment = Callable[[dict[str, np.ndarray], np.random.Generator], dict[str, np.ndarray]]


def _batches(n: int, batch_size: int, rng: np.random.Generator, labels: np.ndarray | None = None,
             num_classes: int = 0) -> list[np.ndarray]:
    if labels is None:
        order = rng.permutation(n)
        out = [order[i:i + batch_size] for i in range(0, n, batch_size)]
        if len(out) > 1 and len(out[-1]) == 1:          # BatchNorm cannot train on one sample: join the last two
            out[-2:] = [np.concatenate(out[-2:])]
        return out
    per_class = max(1, batch_size // num_classes)                       # class-balanced batches
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]
    pools = [p for p in pools if len(p)]
    n_batches = max(1, n // (per_class * len(pools)))
    out = []
    for b in range(n_batches):
        idx = [np.take(p, np.arange(b * per_class, (b + 1) * per_class), mode='wrap') for p in pools]
        out.append(rng.permutation(np.concatenate(idx)))
    return out


def _to_tensors(inputs: Mapping[str, np.ndarray], index, device) -> dict[str, torch.Tensor]:
    return {m: torch.as_tensor(np.ascontiguousarray(x[index]), dtype=torch.float32).to(device)
            for m, x in inputs.items()}


@torch.inference_mode()
def predict(model: FusionModel, split: ArraySplit, *, batch_size: int = 256, device='cpu',
            present: np.ndarray | None = None) -> np.ndarray:
    """Logits (N, num_classes) in eval mode; ``present`` (N, M) marks missing modalities."""
    model.eval()
    out = []
    for start in range(0, len(split), batch_size):
        index = slice(start, start + batch_size)
        mask = None if present is None else torch.as_tensor(present[index]).to(device)
        out.append(model(_to_tensors(split.inputs, index, device), mask).logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), np.float32)


def _schedule(optimizer, cfg: TrainConfig):
    if cfg.schedule == 'step':
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma)
    if cfg.schedule == 'cosine':
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(cfg.epochs, 1))
    if cfg.schedule == 'exponential':
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, cfg.gamma)
    return None


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns: one record per epoch, and the best epoch when there was a validation score."""

    history: list[dict]
    best_epoch: int
    best_score: float | None
    state_dict: dict[str, torch.Tensor] | None
    wall_time_s: float


Step = Callable[[Any], 'tuple[torch.Tensor, int, Mapping[str, float]]']


def make_optimizer(params, *, optimizer: str = 'adam', lr: float = 1e-3, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """Adam or SGD over ``params`` (parameters or parameter groups)."""
    if optimizer == 'adam':
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if optimizer == 'sgd':
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")


def fit(model: torch.nn.Module, *, epochs: int, batches: Callable[[], Iterable[Any]], step: Step,
        optimizer: torch.optim.Optimizer, scheduler=None, evaluate: Callable[[], float] | None = None,
        metric: str = 'val', train_mode: Callable[[], None] | None = None,
        grad_clip: float | Callable[[list[torch.Tensor]], None] = 0.0, patience: int = 0,
        end_of_epoch: Callable[[dict], bool | None] | None = None, progress: bool = False,
        desc: str = 'train', keep_best: bool = True) -> FitResult:
    """
    Train ``model``: the one training loop (fusion models, vmapped ensembles, auto-encoders, probes, fine-tuning).

    Per epoch: ``train_mode()`` (default ``model.train()``); for each item of ``batches()``
    ``step(item)`` returns ``(loss, batch size, loss parts)``, and the loop takes the
    optimizer step (gradients clipped to norm ``grad_clip`` when > 0, or by ``grad_clip(params)``
    when it is a function); then the scheduler steps, ``evaluate()`` (if given) scores the
    epoch as ``record[metric]``, the best epoch's weights are kept, ``end_of_epoch(record)``
    may add to the record or log it (returning True stops training: a caller's own stopping
    rule, e.g. a vmapped ensemble's per-member early stopping), and training stops after
    ``patience`` epochs without a better score (0: never).
    With ``evaluate`` (and ``keep_best``) the model ends with the best epoch's weights,
    otherwise with the last.  Seeding is the caller's (it also owns the random generators ``batches`` and
    ``step`` draw from).
    """
    params = [p for group in optimizer.param_groups for p in group['params']]
    history: list[dict] = []
    best: tuple[float, int, dict | None] = (-np.inf, -1, None)
    stale = 0
    start = time.perf_counter()
    bar = _progress(epochs, desc, progress)
    for epoch in range(1, epochs + 1):
        (train_mode or model.train)()
        t0, total, seen, parts_sum = time.perf_counter(), 0.0, 0, {}
        for item in batches():
            loss, size, parts = step(item)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if callable(grad_clip):
                grad_clip(params)
            elif grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            total += float(loss.detach()) * size
            seen += size
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v * size
        record = {'epoch': epoch, 'loss': total / max(seen, 1), 'lr': optimizer.param_groups[0]['lr']}
        if parts_sum:
            record['loss_parts'] = {k: v / max(seen, 1) for k, v in parts_sum.items()}
        if scheduler is not None:
            scheduler.step()
        if evaluate is not None:
            score = record[metric] = evaluate()
            if score > best[0]:
                best = (score, epoch, copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                        if keep_best else None)     # the last epoch is kept: no copy of every better one
                stale = 0
            else:
                stale += 1
        record['seconds'] = time.perf_counter() - t0
        stop = bool(end_of_epoch(record)) if end_of_epoch is not None else False
        history.append(record)
        bar.update(1)
        bar.set_postfix(loss=f'{record["loss"]:.3f}', **({} if evaluate is None else
                                                         {'val': f'{record[metric]:.3f}', 'best': f'{best[0]:.3f}'}))
        if stop or (evaluate is not None and patience and stale >= patience):
            break
    bar.close()
    if not keep_best:                        # the last epoch's weights, scored as that epoch was
        last = history[-1].get(metric) if evaluate is not None and history else None
        return FitResult(history=history, best_epoch=len(history), best_score=None if last is None else float(last),
                         state_dict=None, wall_time_s=time.perf_counter() - start)
    if best[2] is not None:
        model.load_state_dict(best[2])
    return FitResult(history=history, best_epoch=best[1] if best[2] is not None else len(history),
                     best_score=float(best[0]) if best[2] is not None else None, state_dict=best[2],
                     wall_time_s=time.perf_counter() - start)


def shrinkage_lda(x: np.ndarray, y: np.ndarray, num_classes: int, shrinkage: float,
                  sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """
    Linear discriminant analysis with a shrunk pooled covariance: ``x`` (N, D), ``y`` (N,) -> ``W`` (C, D), ``b`` (C,).

    The within-class covariance ``S`` becomes ``(1 - shrinkage) S + shrinkage (tr S / D) I``;
    the scores ``W x + b`` are the class log-likelihoods up to a constant, with equal class
    priors (softmax of them: the posteriors). A class with no sample is never chosen.
    ``sample_weight`` (N,): each row's weight in the class means and the covariance (default 1).
    """
    return _shrinkage_lda_path(x, y, num_classes, [shrinkage], sample_weight)[0]


def _shrinkage_lda_path(x: np.ndarray, y: np.ndarray, num_classes: int, shrinkages: list[float],
                        sample_weight: np.ndarray | None = None,
                        columns: list[np.ndarray | None] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """
    :func:`shrinkage_lda` for every (column subset, shrinkage), in that order: ``W`` (C, D) zero outside the subset.

    The class means and the within-class scatter are computed once; a column subset's are
    their sub-blocks.
    """
    if not shrinkages or any(not 0.0 < v <= 1.0 for v in shrinkages):
        raise ValueError(f'shrinkage must be in (0, 1], got {list(shrinkages)}')
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.int64)
    sw = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    if sw.shape != y.shape or not np.all(np.isfinite(sw)) or np.any(sw < 0):
        raise ValueError(f'sample_weight must be {y.shape} finite values >= 0, got shape {sw.shape}')
    present = [c for c in range(num_classes) if np.sum(sw[y == c]) > 0]
    if len(present) < 2:
        raise ValueError(f'shrinkage_lda needs samples of at least two classes, got {present}')
    absent = [c for c in range(num_classes) if c not in present]
    mu = np.zeros((num_classes, x.shape[1]))
    for c in present:
        mu[c] = np.average(x[y == c], axis=0, weights=sw[y == c])
    centred = (x - mu[y]) * np.sqrt(sw)[:, None]                                  # (N, D)
    n, total = len(x), float(sw.sum())
    scatter = centred.T @ centred / total if x.shape[1] <= n else None            # S (D, D)
    out = []
    for cols in columns or [None]:
        idx = np.arange(x.shape[1]) if cols is None else np.asarray(cols)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx                   # a mask or indices
        d, m = len(idx), mu[:, idx]
        if scatter is not None:
            s = scatter[np.ix_(idx, idx)]
            trace = max(float(np.trace(s)) / d, 1e-12)                             # tr(S) / D
        else:
            u0 = centred[:, idx]
            trace = max(float(np.sum(u0 * u0)) / (total * d), 1e-12)
        for shrinkage in shrinkages:
            lam = shrinkage * trace
            if scatter is not None:
                wk = np.linalg.solve((1.0 - shrinkage) * s + lam * np.eye(d), m.T).T      # (C, d)
            else:                                                                 # Woodbury: an N x N system
                u = u0 * math.sqrt((1.0 - shrinkage) / total)                     # S' = u.T u + lam I
                inner = lam * np.eye(n) + u @ u.T
                wk = ((m.T - u.T @ np.linalg.solve(inner, u @ m.T)) / lam).T
            w = np.zeros((num_classes, x.shape[1]))
            w[:, idx] = wk
            b = -0.5 * np.einsum('cd,cd->c', wk, m)
            w[absent], b[absent] = 0.0, -1e4
            out.append((w, b))
    return out


def lda_columns(names: list[str] | None, drop_prefixes: list[list[str]]) -> list[np.ndarray | None]:
    """
    Column subsets of an LDA ensemble: per group, the values whose names start with none of its prefixes.

    No groups: ``[None]`` (every column).  A group that leaves nothing, or groups without ``names``,
    is an error that says so.
    """
    if not drop_prefixes:
        return [None]
    if names is None:
        raise ValueError('train.lda_drop_prefixes needs the names of the input values, and this dataset gives none '
                         '(the emotion functionals do)')
    out = []
    for group in drop_prefixes:
        keep = np.asarray([not any(n.startswith(p) for p in group) for n in names])
        if not keep.any():
            raise ValueError(f'train.lda_drop_prefixes group {group} leaves no input value')
        out.append(None if keep.all() else np.flatnonzero(keep))
    return out


def lda_ensemble(x: np.ndarray, y: np.ndarray, num_classes: int, shrinkages: list[float],
                 columns: list[np.ndarray | None] | None = None,
                 sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """
    Average the scores of :func:`shrinkage_lda` over every (column subset, shrinkage): ``W`` (C, D), ``b`` (C,).

    A member fitted on a subset of the columns weighs the others by 0, so the average is one
    linear map of all ``D`` inputs (a log-linear pool of the members' posteriors).
    ``sample_weight``: as :func:`shrinkage_lda`'s, for every member.
    """
    if not shrinkages:
        raise ValueError('lda_ensemble needs at least one shrinkage')
    members = _shrinkage_lda_path(x, y, num_classes, shrinkages, sample_weight, columns)
    return np.mean([w for w, _ in members], axis=0), np.mean([b for _, b in members], axis=0)


def _fit_linear_closed_form(model: FusionModel, split: ArraySplit, cfg: TrainConfig,
                            input_names: dict[str, list[str]] | None = None) -> None:
    """Set a linear model's only Linear layer to :func:`shrinkage_lda` (or :func:`lda_ensemble`) of ``split``."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    others = [n for n, p in model.named_parameters() if p.requires_grad and not n.endswith(('.weight', '.bias'))]
    if len(layers) != 1 or len(split.inputs) != 1 or others:
        raise ValueError(f"train.solver 'shrinkage_lda' needs a linear model on one modality (one Linear layer, e.g. "
                         f'kind mlp with widths []), got {len(layers)} Linear layers and {len(split.inputs)} '
                         'modalities')
    (x,) = split.inputs.values()
    fc = layers[0]
    if fc.in_features != int(np.prod(x.shape[1:])) or split.labels.ndim != 1:
        raise ValueError(f'shrinkage_lda: the Linear layer takes {fc.in_features} values, the inputs have '
                         f'{x.shape[1:]}; labels must be class indices')
    if cfg.lda_shrinkages or cfg.lda_drop_prefixes:
        (name,) = split.inputs
        names = (input_names or {}).get(name)
        if names is not None and len(names) != fc.in_features:
            raise ValueError(f'{len(names)} input names for the {fc.in_features} values of modality {name!r}')
        columns = lda_columns(names, cfg.lda_drop_prefixes)
        w, b = lda_ensemble(x, split.labels, fc.out_features, cfg.lda_shrinkages or [cfg.shrinkage], columns,
                            split.weights)
    else:
        w, b = shrinkage_lda(x, split.labels, fc.out_features, cfg.shrinkage, split.weights)
    with torch.no_grad():
        fc.weight.copy_(torch.as_tensor(w, dtype=fc.weight.dtype))
        fc.bias.copy_(torch.as_tensor(b, dtype=fc.bias.dtype))


def train(model: FusionModel, train_split: ArraySplit, val_split: ArraySplit, cfg: TrainConfig, *,
          seed: int = 0, test_split: ArraySplit | None = None, augment: Augment | None = None,
          task: str = 'multiclass', desc: str = 'train', input_names: dict[str, list[str]] | None = None,
          regularizer: Callable[[], torch.Tensor] | None = None) -> TrainResult:
    """
    Train a fusion model with :func:`fit`, keep its best validation epoch, and evaluate that on ``test_split``.

    ``input_names``: modality -> the names of its input values, for ``cfg.lda_drop_prefixes``.

    The loss is :func:`~centralnet_ros.fusion.fusion_loss` (the output's plus every
    unimodal loss), plus ``regularizer()`` when given (a penalty on the weights, e.g.
    fine-tuning's L2-SP); the scalar fusion weights have their own learning rate and no
    weight decay, and are logged each epoch.
    """
    if train_split.weights is not None and cfg.solver != 'shrinkage_lda':
        raise ValueError(f"sample weights (ArraySplit.weights) are read by train.solver 'shrinkage_lda' only, not "
                         f'{cfg.solver!r}')
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    device = resolve_device(cfg.device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    fusion_ids = {id(p) for p in model.fusion_weight_parameters()}
    if not cfg.encoder_lr_scale > 0:
        raise ValueError(f'encoder_lr_scale must be > 0, got {cfg.encoder_lr_scale}')
    if not 0.0 <= cfg.label_smoothing < 1.0:
        raise ValueError(f'label_smoothing must be in [0, 1), got {cfg.label_smoothing}')
    scaled = {id(p) for n, p in model.named_parameters()
              if cfg.encoder_lr_scale != 1.0 and n.startswith('encoders.') and '.head.' not in n}
    groups = [{'params': [p for p in params if id(p) not in fusion_ids and id(p) not in scaled]}]
    if scaled:
        groups.append({'params': [p for p in params if id(p) in scaled], 'lr': cfg.lr * cfg.encoder_lr_scale})
    if fusion_ids:
        groups.append({'params': [p for p in params if id(p) in fusion_ids], 'weight_decay': 0.0,
                       'lr': cfg.fusion_weight_lr or cfg.lr})
    optimizer = make_optimizer(groups, optimizer=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                               momentum=cfg.momentum)
    num_classes = model.num_classes
    labels_dtype = torch.long if task == 'multiclass' else torch.float32

    def batches():
        return _batches(len(train_split), cfg.batch_size, rng,
                        train_split.labels if cfg.class_balanced_batches else None, num_classes)

    def step(index):
        inputs = {m: x[index] for m, x in train_split.inputs.items()}
        if augment is not None:
            inputs = augment(inputs, rng)
        x = _to_tensors(inputs, slice(None), device)
        y = torch.as_tensor(train_split.labels[index], dtype=labels_dtype, device=device)
        loss, parts = fusion_loss(model(x), y, task=task, central_weight=cfg.central_loss_weight,
                                  unimodal_weight=cfg.unimodal_loss_weight, label_smoothing=cfg.label_smoothing)
        if regularizer is not None:
            penalty = regularizer()
            parts = {**parts, 'regularizer': float(penalty.detach())}
            loss = loss + penalty
        return loss, len(index), parts

    def evaluate():
        return compute_metric(cfg.metric, predict(model, val_split, device=device), val_split.labels, num_classes)

    def log_fusion_weights(record):
        weights = model.fusion_weights()
        if weights is not None:
            record['fusion_weights'] = weights

    if cfg.solver == 'shrinkage_lda':
        start = time.perf_counter()
        _fit_linear_closed_form(model, train_split, cfg, input_names)
        model.eval()
        score = evaluate()
        fitted = FitResult(best_epoch=0, best_score=score, history=[{'epoch': 0, f'val_{cfg.metric}': score}],
                           wall_time_s=time.perf_counter() - start,
                           state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    else:
        fitted = fit(model, epochs=cfg.epochs, batches=batches, step=step, optimizer=optimizer,
                     scheduler=_schedule(optimizer, cfg), evaluate=evaluate, metric=f'val_{cfg.metric}',
                     grad_clip=cfg.grad_clip, patience=cfg.patience, end_of_epoch=log_fusion_weights,
                     progress=cfg.progress, desc=desc, keep_best=cfg.select == 'best')
    test_metric, test_logits = None, None
    if test_split is not None:
        test_logits = predict(model, test_split, device=device)
        test_metric = compute_metric(cfg.metric, test_logits, test_split.labels, num_classes)
    val_metric = float('nan') if fitted.best_score is None else fitted.best_score
    return TrainResult(best_epoch=fitted.best_epoch, val_metric=val_metric, test_metric=test_metric,
                       history=fitted.history, wall_time_s=fitted.wall_time_s, epochs_run=len(fitted.history),
                       state_dict=fitted.state_dict, test_logits=test_logits)


class _NoBar:
    """The progress-bar interface the trainer uses, doing nothing (progress display off)."""

    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit='epoch', leave=False, dynamic_ncols=True)
