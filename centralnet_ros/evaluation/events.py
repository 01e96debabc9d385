"""
Event metrics: what a robot acting on events suffers (numpy only).

Inputs are duck-typed so training, replay and benchmarks share them: an *event* has
``label``, ``score``, ``peak_ns`` (its reference time) and ``stamp_ns`` (when it was
emitted); an *instance* (ground truth) has ``label``, ``start_ns`` and ``end_ns``
(``[start, end)``, header time).

Matching rule (:func:`match_events`): an event matches a labelled instance when its
reference time ``peak_ns`` falls inside the instance and the labels are equal; each
instance matches at most one event and each event at most one instance (events are
taken by decreasing score).  Everything else is an error:

- a *false alarm*: an event whose reference time lies in no instance (non-target time);
- a *substitution*: an event inside an instance with a different label, or a second
  event inside an already matched instance;
- a *miss*: an instance without a matching event.

Precision = matched / events, recall = matched / instances, F1 their harmonic mean.
False alarms per minute are counted over the *non-target time*: the explicit
``background`` segments when given, otherwise the evaluated span minus the union of
the instances.  Latency is ``event.stamp_ns - instance.end_ns`` (negative: decided
before the instance ended).  A recording with no instance at all gives precision
``None`` (no events: nothing to be precise about) and counts every event as a false
alarm.
"""
from __future__ import annotations

from collections import Counter
import dataclasses
from typing import Any, Sequence

import numpy as np

__all__ = ['EventMatching', 'match_events', 'event_metrics', 'union_ns', 'pool_event_metrics']

_NS = 1_000_000_000
MISSED = '(missed)'


@dataclasses.dataclass
class EventMatching:
    """Which event matched which instance (indices into the given sequences), and the errors."""

    pairs: list[tuple[int, int]]           # (event index, instance index)
    false_alarms: list[int]                # event indices outside every instance
    substitutions: list[tuple[int, int]]   # (event index, instance index it fell in)
    missed: list[int]                      # instance indices


def _contains(inst: Any, t: int) -> bool:
    return inst.start_ns <= t < inst.end_ns


def match_events(events: Sequence[Any], instances: Sequence[Any]) -> EventMatching:
    """Match ``events`` to ``instances`` by the rule in the module docstring."""
    starts = np.asarray([i.start_ns for i in instances], np.int64)
    order = np.argsort(starts, kind='stable')
    sorted_starts = starts[order]
    taken: dict[int, int] = {}
    pairs, false_alarms, substitutions = [], [], []
    for e in sorted(range(len(events)), key=lambda k: (-float(events[k].score), events[k].peak_ns)):
        t = int(events[e].peak_ns)
        # instances may overlap (rarely): consider every instance containing t
        hi = int(np.searchsorted(sorted_starts, t, side='right'))
        inside = [int(order[k]) for k in range(hi - 1, -1, -1) if _contains(instances[int(order[k])], t)]
        if not inside:
            false_alarms.append(e)
            continue
        same = [i for i in inside if instances[i].label == events[e].label and i not in taken]
        if same:
            taken[same[0]] = e
            pairs.append((e, same[0]))
        else:
            substitutions.append((e, inside[0]))
    missed = [i for i in range(len(instances)) if i not in taken]
    return EventMatching(sorted(pairs), sorted(false_alarms), sorted(substitutions), missed)


def union_ns(intervals: Sequence[tuple[int, int]]) -> int:
    """Total length of the union of ``[start, end)`` intervals (ns)."""
    total, cur_s, cur_e = 0, None, None
    for s, e in sorted((int(a), int(b)) for a, b in intervals if b > a):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def _overlap_ns(a: tuple[int, int], intervals: Sequence[tuple[int, int]]) -> int:
    return union_ns([(max(a[0], s), min(a[1], e)) for s, e in intervals])


def event_metrics(events: Sequence[Any], instances: Sequence[Any], *, span_ns: tuple[int, int] | None = None,
                  background: Sequence[tuple[int, int]] | None = None,
                  labels: Sequence[str] | None = None) -> dict[str, Any]:
    """
    Precision, recall, F1, false alarms per minute of non-target time and latency.

    ``span_ns``: the evaluated time ``(start, end)`` (default: from the earliest to
    the latest instance or event). ``background``: explicit non-target segments
    (``(start_ns, end_ns)``); when given, only events inside them count as false
    alarms per minute (the others outside instances are still false positives).
    ``labels``: class names for the instance confusion (rows: true label, columns:
    the label of the event in the instance, or ``(missed)``).
    """
    m = match_events(events, instances)
    inst_iv = [(int(i.start_ns), int(i.end_ns)) for i in instances]
    if span_ns is None:
        times = [t for iv in inst_iv for t in iv] + [int(e.peak_ns) for e in events]
        span_ns = (min(times), max(times)) if times else (0, 0)
    span = (int(span_ns[0]), int(span_ns[1]))
    if background is not None:
        bg = [(int(s), int(e)) for s, e in background]
        non_target_ns = union_ns([(max(s, span[0]), min(e, span[1])) for s, e in bg])
        fa_in_bg = [k for k in m.false_alarms if any(s <= events[k].peak_ns < e for s, e in bg)]
    else:
        non_target_ns = max(0, (span[1] - span[0]) - _overlap_ns(span, inst_iv))
        fa_in_bg = list(m.false_alarms)
    n_ev, n_inst, n_tp = len(events), len(instances), len(m.pairs)
    precision = n_tp / n_ev if n_ev else (None if not n_inst else 1.0)
    recall = n_tp / n_inst if n_inst else None
    f1 = (2 * precision * recall / (precision + recall) if precision is not None and recall is not None
          and precision + recall > 0 else (0.0 if precision is not None and recall is not None else None))
    latency = [(int(events[e].stamp_ns) - instances[i].end_ns) / _NS for e, i in m.pairs]
    minutes = non_target_ns / _NS / 60.0
    out = {
        'events': n_ev, 'instances': n_inst, 'matched': n_tp,
        'false_alarms': len(m.false_alarms), 'substitutions': len(m.substitutions), 'missed': len(m.missed),
        'precision': precision, 'recall': recall, 'f1': f1,
        'non_target_s': non_target_ns / _NS,
        'false_alarms_in_non_target': len(fa_in_bg),
        'false_alarms_per_min': (len(fa_in_bg) / minutes) if minutes > 0 else None,
        'latency_s': _summary(latency),
        'false_alarm_labels': dict(Counter(events[k].label for k in m.false_alarms)),
        'latencies_s': [round(v, 6) for v in latency],
    }
    if labels is not None:
        cols = list(labels) + [MISSED]
        index = {n: i for i, n in enumerate(cols)}
        cm = np.zeros((len(labels), len(cols)), np.int64)
        got = {i: e for e, i in m.pairs}
        for e, i in m.substitutions:
            got.setdefault(i, e)
        for i, inst in enumerate(instances):
            if inst.label not in index:
                continue
            col = index.get(events[got[i]].label, index[MISSED]) if i in got else index[MISSED]
            cm[index[inst.label], col] += 1
        out['confusion'] = cm.tolist()
        out['confusion_columns'] = cols
    return out


def _summary(values: Sequence[float]) -> dict[str, float | None]:
    if not len(values):
        return {'p50': None, 'p95': None, 'mean': None, 'max': None}
    a = np.asarray(values, np.float64)
    return {'p50': float(np.percentile(a, 50)), 'p95': float(np.percentile(a, 95)), 'mean': float(a.mean()),
            'max': float(a.max())}


def pool_event_metrics(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pool the counts of several :func:`event_metrics` results (recordings, folds) into one result."""
    keys = ('events', 'instances', 'matched', 'false_alarms', 'substitutions', 'missed', 'false_alarms_in_non_target')
    out: dict[str, Any] = {k: int(sum(p[k] for p in parts)) for k in keys}
    out['non_target_s'] = float(sum(p['non_target_s'] for p in parts))
    n_ev, n_inst, n_tp = out['events'], out['instances'], out['matched']
    p = n_tp / n_ev if n_ev else None
    r = n_tp / n_inst if n_inst else None
    out['precision'], out['recall'] = p, r
    out['f1'] = (2 * p * r / (p + r) if p + r > 0 else 0.0) if p is not None and r is not None else None
    minutes = out['non_target_s'] / 60.0
    out['false_alarms_per_min'] = out['false_alarms_in_non_target'] / minutes if minutes > 0 else None
    out['latencies_s'] = [v for q in parts for v in q.get('latencies_s', ())]
    out['latency_s'] = _summary(out['latencies_s'])
    labels = Counter()
    for q in parts:
        labels.update(q.get('false_alarm_labels', {}))
    out['false_alarm_labels'] = dict(labels)
    if all('confusion' in q for q in parts) and parts:
        out['confusion'] = np.sum([np.asarray(q['confusion']) for q in parts], axis=0).tolist()
        out['confusion_columns'] = parts[0]['confusion_columns']
    return out
