"""
Per-task metrics of a replay against ground truth.

A decision is scored against the segment of its task containing its header stamp;
decisions outside every segment of their task are *unlabelled* (counted, not scored).
Per segment, the majority label of the decisions inside it is the segment's
prediction (ties go to the larger summed score; a segment without decisions counts
as missed and wrong).

Events (what the robot acts on, :meth:`Perception.take_events`) are scored by
:func:`centralnet_ros.evaluation.events.event_metrics`: an event matches a labelled
segment when its peak falls inside it with the same label, one match per segment;
false alarms are counted per minute of non-target time. Segments labelled
``background`` mark non-target time explicitly (then only that time counts); segments
labelled with a rejection class (``none``, ``not_a_letter``) are non-target time too
and are never instances. A task whose recording holds no instance at all reports the
events it published there (``events_on_no_target``).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Mapping, Sequence

import numpy as np

from .labels import LabelFileError, LabelSegment
from ..runtime.events import DEFAULT_REJECT_LABELS, Event
from ..runtime.perception import TaskResult

__all__ = ['assign_truth', 'evaluate', 'BACKGROUND']

BACKGROUND = 'background'
"""The label of a segment that marks non-target time explicitly (no class of any task)."""

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
             labels: Mapping[str, Sequence[str]], *, events: Sequence[Event] | None = None,
             span_ns: tuple[int, int] | None = None) -> dict[str, dict]:
    """
    Per-task metrics (see the module docstring). ``labels``: task -> class names of its bundle.

    ``events``: the replay's events (adds ``events`` metrics per task); ``span_ns``: the
    recording's time span (for the non-target time). Raises :class:`LabelFileError` when a
    ground-truth label is neither a class of the task nor ``background``.
    """
    from ..evaluation.metrics import confusion_matrix, macro_accuracy
    all_segments = list(segments)
    segments = [s for s in all_segments if s.label != BACKGROUND]
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
        if events is not None:
            out[task]['events'] = _event_metrics(task, names, [e for e in events if e.task == task],
                                                 [s for s in all_segments if s.task == task], span_ns)
    return out


def _event_metrics(task: str, names: Sequence[str], events: list[Event], segments: list[LabelSegment],
                   span_ns: tuple[int, int] | None) -> dict:
    from ..evaluation.events import event_metrics
    non_target = set(DEFAULT_REJECT_LABELS) | {BACKGROUND}
    instances = [s for s in segments if s.label not in non_target]
    explicit = [(s.start_ns, s.end_ns) for s in segments if s.label == BACKGROUND]
    m = event_metrics(events, instances, span_ns=span_ns, background=explicit or None,
                      labels=[n for n in names if n not in non_target])
    m['matching_rule'] = ('an event matches a labelled segment when its peak falls inside it with the same label, '
                          'one match per segment; false alarms: events outside every segment, per minute of '
                          + ('the background segments' if explicit else 'time outside the labelled segments'))
    m['no_target'] = not instances
    m['events_on_no_target'] = len(events) if not instances else None
    return m
