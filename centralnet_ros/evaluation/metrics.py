"""Classification metrics (numpy)."""
from __future__ import annotations

import numpy as np


def accuracy(pred: np.ndarray, target: np.ndarray) -> float:
    pred, target = np.asarray(pred), np.asarray(target)
    return float((pred == target).mean()) if target.size else float('nan')


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(target, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return cm


def macro_accuracy(pred: np.ndarray, target: np.ndarray, num_classes: int) -> float:
    """Mean per-class recall over the classes present in ``target`` (the paper's Montalbano metric)."""
    cm = confusion_matrix(pred, target, num_classes)
    support = cm.sum(1)
    seen = support > 0
    return float((np.diag(cm)[seen] / support[seen]).mean()) if seen.any() else float('nan')


def multilabel_f1(scores: np.ndarray, target: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """
    Micro, macro, weighted and samples F1 for multi-label outputs (sigmoid scores), as scikit-learn defines them.

    ``weighted`` averages the per-class F1 weighted by each class's number of true labels (MM-IMDb's
    headline figure); ``samples`` averages the F1 of each sample's label set.
    """
    pred = np.asarray(scores) >= threshold
    target = np.asarray(target).astype(bool)
    tp = (pred & target).sum(0).astype(float)
    fp = (pred & ~target).sum(0).astype(float)
    fn = (~pred & target).sum(0).astype(float)
    micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1e-12)
    per_class = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-12)
    support = target.sum(0).astype(float)
    weighted = float((per_class * support).sum() / support.sum()) if support.sum() else 0.0
    s_tp = (pred & target).sum(1).astype(float)
    s_den = pred.sum(1) + target.sum(1)
    samples = np.where(s_den > 0, 2 * s_tp / np.maximum(s_den, 1), 1.0)   # both empty: a perfect match
    return {'micro_f1': float(micro), 'macro_f1': float(per_class.mean()), 'weighted_f1': weighted,
            'samples_f1': float(samples.mean()) if len(samples) else 0.0}


MULTILABEL_METRICS = ('micro_f1', 'macro_f1', 'weighted_f1', 'samples_f1')


def compute_metric(name: str, logits: np.ndarray, target: np.ndarray, num_classes: int) -> float:
    if name == 'accuracy':
        return accuracy(logits.argmax(1), target)
    if name == 'macro_accuracy':
        return macro_accuracy(logits.argmax(1), target, num_classes)
    if name in MULTILABEL_METRICS:
        return multilabel_f1(1 / (1 + np.exp(-logits)), target)[name]
    raise ValueError(f'unknown metric {name!r}; known: accuracy, macro_accuracy, {", ".join(MULTILABEL_METRICS)}')
