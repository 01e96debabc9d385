"""
Per-task metrics of a replay against ground truth.

A decision is scored against the segment of its task containing its header stamp;
decisions outside every segment of their task are *unlabelled* (counted, not scored).
Per segment, the majority label of the decisions inside it is the segment's
prediction (ties go to the larger summed score; a segment without decisions counts
as missed and wrong).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Mapping, Sequence

import numpy as np

from .labels import LabelFileError, LabelSegment
from ..runtime.perception import TaskResult

__all__ = ['assign_truth', 'evaluate']

_NS = 1_000_000_000


def assign_truth(results: Sequence[TaskResult], segments: Sequence[LabelSegment]) -> list[LabelSegment | None]:
    """For each result, the segment of its task containing its stamp (or None)."""
    by_task: dict[str, list[LabelSegment]] = defaultdict(list)
    for s in segments:
        by_task[s.task].append(s)
    starts = {}
    for task, segs in by_task.items():
        segs.sort(key=lambda s: s.start_ns)
        starts[task] = np.asarray([s.start_ns for s in segs], np.int64)
    out = []
    for r in results:
        segs = by_task.get(r.task)
        if not segs:
            out.append(None)
            continue
        k = int(np.searchsorted(starts[r.task], r.stamp_ns, side='right')) - 1
        out.append(segs[k] if k >= 0 and r.stamp_ns < segs[k].end_ns else None)
    return out


def _vote(rs: list[TaskResult]) -> str | None:
    if not rs:
        return None
    votes = Counter(r.label for r in rs)
    scores = defaultdict(float)
    for r in rs:
        scores[r.label] += r.score
    return max(votes, key=lambda lab: (votes[lab], scores[lab]))


def evaluate(results: Sequence[TaskResult], segments: Sequence[LabelSegment],
             labels: Mapping[str, Sequence[str]]) -> dict[str, dict]:
    """
    Per-task metrics (see the module docstring). ``labels``: task -> class names of its bundle.

    Raises :class:`LabelFileError` when a ground-truth label is not a class of the task.
    """
    from ..evaluation.metrics import confusion_matrix, macro_accuracy
    for s in segments:
        if s.task in labels and s.label not in labels[s.task]:
            raise LabelFileError(f'ground truth label {s.label!r} for {s.task} at {s.start_ns / _NS:.3f} s is not a '
                                 f'class of its bundle; classes: {", ".join(labels[s.task])}')
    truth = assign_truth(results, segments)
    out = {}
    for task, names in labels.items():
        index = {n: i for i, n in enumerate(names)}
        idx = [i for i, r in enumerate(results) if r.task == task]
        rs = [results[i] for i in idx]
        tr = [truth[i] for i in idx]
        scored = [(r, s) for r, s in zip(rs, tr) if s is not None]
        pred = np.asarray([index[r.label] for r, _ in scored], np.int64)
        target = np.asarray([index[s.label] for _, s in scored], np.int64)
        pub = [(r, s) for r, s in scored if r.published]
        segs = sorted((s for s in segments if s.task == task), key=lambda s: s.start_ns)
        inside: dict[LabelSegment, list[TaskResult]] = defaultdict(list)
        for r, s in scored:
            inside[s].append(r)
        seg_pred = [_vote(inside[s]) for s in segs]
        seg_pub = [_vote([r for r in inside[s] if r.published]) for s in segs]
        lat = [r.timing for r in rs]
        cm = confusion_matrix(pred, target, len(names)) if len(scored) else np.zeros((len(names),) * 2, np.int64)

        def pct(values):
            if not values:
                return {'p50': None, 'p95': None, 'p99': None, 'mean': None, 'max': None}
            a = np.asarray(values) * 1e3
            return {'p50': float(np.percentile(a, 50)), 'p95': float(np.percentile(a, 95)),
                    'p99': float(np.percentile(a, 99)), 'mean': float(a.mean()), 'max': float(a.max())}

        out[task] = {
            'labels': list(names),
            'decisions': len(rs),
            'published': sum(r.published for r in rs),
            'labelled_decisions': len(scored),
            'unlabelled_decisions': len(rs) - len(scored),
            'decision_accuracy': float((pred == target).mean()) if len(scored) else None,
            'decision_macro_accuracy': macro_accuracy(pred, target, len(names)) if len(scored) else None,
            'published_labelled': len(pub),
            'published_accuracy': (float(np.mean([r.label == s.label for r, s in pub])) if pub else None),
            'segments': len(segs),
            'segments_with_decisions': sum(p is not None for p in seg_pred),
            'segment_accuracy': (float(np.mean([p == s.label for p, s in zip(seg_pred, segs)])) if segs else None),
            'segment_accuracy_published': (float(np.mean([p == s.label for p, s in zip(seg_pub, segs)]))
                                           if segs else None),
            'chance': 1.0 / len(names),
            'confusion': cm.tolist(),
            'latency_ms': pct([t['total'] for t in lat]),
            'features_ms': pct([t['features'] for t in lat]),
            'inference_ms': pct([t['inference'] for t in lat]),
            'missing': dict(Counter(f'{m}:{why}' for r in rs for m, why in r.missing.items())),
        }
    return out
