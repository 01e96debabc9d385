"""
Calibrating decisions on validation data: streamed posteriors, event thresholds, rejection.

- :func:`msrc12_stream`: a whole MSRC-12 recording streamed as the robot sees it: a
  decision every ``1 / rate_hz`` s of the recording's clock, each over the tracked
  frames stamped in ``[t - window_s, t]`` (none when the newest is older than
  ``max_age_s``), through the runtime's own ``skeleton_sequence`` pipeline;
- :func:`msrc12_instances`: the labelled instances of a recording, ``[action point -
  before_s, action point + after_s)``, cut at the midpoint between two action points
  that would otherwise overlap;
- :func:`calibrate_events`: the :class:`~centralnet_ros.runtime.events.EventConfig`
  (smoothing, hysteresis, minimum gap) with the best event F1 among those whose false
  alarms per minute of non-target time stay within a target, on validation streams;
- :func:`calibrate_threshold`: the lowest score threshold under which at most a target
  fraction of non-target utterances would be published.

What was calibrated on, the target and the rate reached go into
``EventConfig.calibration`` and from there into the bundle manifest.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..evaluation.events import event_metrics, pool_event_metrics
from ..runtime.events import detect_events, EventConfig

__all__ = ['Instance', 'Stream', 'msrc12_stream', 'msrc12_instances', 'stream_metrics', 'calibrate_events',
           'calibrate_threshold', 'choose_target', 'EVENT_GRID']

_NS = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class Instance:
    """A labelled instance ``[start_ns, end_ns)`` (the shape :mod:`..evaluation.events` reads)."""

    label: str
    start_ns: int
    end_ns: int


@dataclasses.dataclass
class Stream:
    """Posteriors of one recording: decision times (ns), ``probs`` (T, C), truth and the evaluated span."""

    name: str
    times_ns: np.ndarray
    probs: np.ndarray
    instances: list[Instance]
    span_ns: tuple[int, int]


def msrc12_stream(seq, *, rate_hz: float, window_s: float, params: dict[str, Any],
                  max_age_s: float = 1.0, pipeline: str = 'skeleton_sequence',
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """
    ``(times_ns (T,), inputs (T, *shape))`` of one :class:`~centralnet_ros.data.msrc12.Sequence`.

    Decision ``k`` is at ``k / rate_hz`` s on the recording's clock (microseconds -> ns),
    from the first to the last tracked frame; the input is ``pipeline`` on the tracked frames
    in ``[t - window_s, t]``, as the runtime assembles it: ``skeleton_sequence`` on the Kinect
    joints, or ``skeleton2d_sequence`` on the recording as a robot's camera sees it: one
    virtual camera per recording (:func:`~centralnet_ros.features.skeleton2d.sample_camera`,
    the default ranges: height 0.5-1.3 m, 1-3.5 m away, yaw +-45 deg), the joints projected
    onto Skeleton2D keypoints with a body detector's noise, drop-outs and occlusions
    (:func:`~centralnet_ros.features.skeleton2d.corrupt_keypoints`' defaults, as in training);
    the camera and noise are drawn from ``seed`` and the recording's name, so a stream is
    the same every time. A window the pipeline refuses (no frame shows the torso) gives no
    decision, as in the runtime.
    """
    from ..features.pipelines import Window
    from ..features.skeleton import skeleton_input
    if pipeline not in ('skeleton_sequence', 'skeleton2d_sequence'):
        raise ValueError(f"msrc12_stream: pipeline must be 'skeleton_sequence' or 'skeleton2d_sequence', got "
                         f'{pipeline!r}')
    tracked = seq.tracked
    stamps = seq.timestamps[tracked].astype(np.int64) * 1000
    frames = seq.positions[tracked]
    if len(stamps) < 2:
        return np.zeros(0, np.int64), np.zeros((0,), np.float32)
    make = skeleton_input
    if pipeline == 'skeleton2d_sequence':
        import zlib
        from ..features import skeleton2d as s2d
        rng = np.random.default_rng([int(seed), zlib.crc32(seq.info.name.encode())])
        camera = s2d.sample_camera(rng, frames)
        frames = s2d.corrupt_keypoints(s2d.kinect_to_skeleton2d(frames, camera), rng,
                                       image_size=(camera.width, camera.height))
        make = s2d.skeleton2d_input
    period = int(round(_NS / rate_hz))
    grid = np.arange(-(-stamps[0] // period) * period, stamps[-1] + 1, period, dtype=np.int64)
    window, max_age = int(window_s * _NS), int(max_age_s * _NS)
    times, xs = [], []
    for t in grid:
        hi = int(np.searchsorted(stamps, t, side='right'))
        lo = int(np.searchsorted(stamps, t - window, side='left'))
        if hi - lo < 1 or t - stamps[hi - 1] > max_age:
            continue
        w = Window(frames[lo:hi], stamps[lo:hi], extra={'end_ns': int(t)})
        try:
            x = make(w, **params)
        except ValueError:            # a window the pipeline refuses (e.g. no frame shows the torso): as in the
            continue                  # runtime, that modality is missing and no decision is made
        xs.append(x)
        times.append(int(t))
    if not xs:
        return np.zeros(0, np.int64), np.zeros((0,), np.float32)
    return np.asarray(times, np.int64), np.stack(xs).astype(np.float32)


def msrc12_instances(seq, labels: Sequence[str], *, before_s: float = 1.5, after_s: float = 1.0) -> list[Instance]:
    """Return the labelled gesture instances of a recording (see the module docstring); times in ns."""
    from ..data import msrc12
    order = np.argsort(seq.action_times)
    aps = seq.action_times[order].astype(np.int64) * 1000
    names = [msrc12.GESTURES[int(g) - 1] for g in seq.action_gestures[order]]
    out = []
    for k, (t, name) in enumerate(zip(aps, names)):
        start, end = int(t - before_s * _NS), int(t + after_s * _NS)
        if k > 0:
            start = max(start, int((aps[k - 1] + t) // 2))
        if k + 1 < len(aps):
            end = min(end, int((aps[k + 1] + t) // 2))
        if name in labels:
            out.append(Instance(name, start, end))
    return out


def stream_metrics(streams: Iterable[Stream], labels: Sequence[str], config: EventConfig) -> dict[str, Any]:
    """Event metrics pooled over ``streams`` with ``config`` (per-recording matching, pooled counts)."""
    parts = []
    for s in streams:
        events = detect_events(s.times_ns, s.probs, labels, config)
        parts.append(event_metrics(events, s.instances, span_ns=s.span_ns, labels=list(labels)))
    return pool_event_metrics(parts)


EVENT_GRID: dict[str, Sequence[float]] = {
    'on_threshold': (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98),
    'off_ratio': (0.5,),                   # off_threshold = on_threshold * off_ratio
    'smoothing_s': (0.1, 0.2, 0.4),
    'min_gap_s': (0.5, 1.0),
}
"""The candidates :func:`calibrate_events` tries (every combination)."""


def calibrate_events(streams: Sequence[Stream], labels: Sequence[str], *, target_false_alarms_per_min: float,
                     base: EventConfig | None = None, grid: dict[str, Sequence[float]] | None = None,
                     data: str = '', progress: Callable[[int, int], None] | None = None,
                     group: Callable[[Stream], str] | None = None) -> EventConfig:
    """
    Choose the event configuration with the best F1 among those within the false-alarm target.

    ``group`` (e.g. the person of a recording): the target must then hold for every group
    on its own (the largest false-alarm rate of a group counts), not only pooled: a
    detector calibrated so holds for each person rather than on average.  When no
    candidate meets ``target_false_alarms_per_min`` the one with the fewest false alarms
    per minute (then best F1) is returned, and ``calibration['target_met']`` says so.
    """
    base = base or EventConfig(mode='events')
    grid = dict(EVENT_GRID if grid is None else grid)
    keys = list(grid)
    combos = list(itertools.product(*(grid[k] for k in keys)))
    best, best_key = None, None
    for n, values in enumerate(combos):
        v = dict(zip(keys, values))
        on = float(v.pop('on_threshold', base.on_threshold))
        ratio = float(v.pop('off_ratio', base.off_threshold / max(base.on_threshold, 1e-9)))
        cfg = dataclasses.replace(base, mode='events', on_threshold=on, off_threshold=round(on * ratio, 4),
                                  **{k: float(x) for k, x in v.items()})
        if group is None:
            m = stream_metrics(streams, labels, cfg)
            fa = m['false_alarms_per_min'] if m['false_alarms_per_min'] is not None else 0.0
        else:
            parts = [stream_metrics([s for s in streams if group(s) == g], labels, cfg)
                     for g in sorted({group(s) for s in streams})]
            m = pool_event_metrics(parts)
            fa = max(p['false_alarms_per_min'] or 0.0 for p in parts)
        ok = fa <= target_false_alarms_per_min
        key = (ok, m['f1'] or 0.0, -fa) if ok else (ok, -fa, m['f1'] or 0.0)
        if best_key is None or key > best_key:
            best, best_key = (cfg, m), key
        if progress is not None:
            progress(n + 1, len(combos))
    cfg, m = best
    cfg.calibration = {
        'data': data, 'target_false_alarms_per_min': float(target_false_alarms_per_min),
        'target_met': bool(best_key[0]), 'candidates': len(combos),
        'f1': _r(m['f1']), 'precision': _r(m['precision']), 'recall': _r(m['recall']),
        'false_alarms_per_min': _r(m['false_alarms_per_min']), 'instances': m['instances'],
        **({'target_holds_for': 'every group (person) on its own', 'worst_group_false_alarms_per_min': _r(-best_key[2]
            if best_key[0] else -best_key[1])} if group is not None else {}),
        'non_target_min': round(m['non_target_s'] / 60.0, 3),
        'rule': ('an event matches an instance when its peak falls inside it with the same label, '
                 'one match per instance; false alarms: events outside every instance'),
    }
    return cfg


def choose_target(streams: Sequence[Stream], labels: Sequence[str], *, budget_per_min: float,
                  group: Callable[[Stream], str], targets: Sequence[float],
                  **calibrate_kwargs: Any) -> tuple[float, list[dict[str, Any]]]:
    """
    Choose the validation false-alarm target that holds a budget on persons the calibration never saw.

    A detector calibrated for ``t`` false alarms per minute on some persons raises more on
    others (the target is met on the calibration persons by construction).  For each
    candidate ``t`` in ``targets`` every ``group`` (person) is held out in turn: the
    detector is calibrated on the others (:func:`calibrate_events` with ``group``) and
    scored on it.  The largest ``t`` whose held-out false alarms per minute stay within
    ``budget_per_min`` for every held-out person is returned (else the ``t`` with the
    fewest held-out false alarms of the worst person, then the best held-out F1), with a
    row per candidate: ``target``, ``held_out_f1``, ``held_out_false_alarms_per_min``
    (pooled), ``held_out_worst_false_alarms_per_min``, ``budget_met``.
    """
    groups = sorted({group(s) for s in streams})
    if len(groups) < 2:
        raise ValueError(f'choose_target needs recordings of at least 2 persons (groups) to hold one out, '
                         f'got {groups}')
    if not targets:
        raise ValueError('choose_target needs at least one candidate target')
    rows = []
    for t in sorted({float(x) for x in targets}, reverse=True):
        held = []
        for g in groups:
            rest = [s for s in streams if group(s) != g]
            cfg = calibrate_events(rest, labels, target_false_alarms_per_min=t, group=group, **calibrate_kwargs)
            held.append(stream_metrics([s for s in streams if group(s) == g], labels, cfg))
        pooled = pool_event_metrics(held)
        worst = max(h['false_alarms_per_min'] or 0.0 for h in held)
        rows.append({'target': t, 'held_out_f1': _r(pooled['f1']),
                     'held_out_false_alarms_per_min': _r(pooled['false_alarms_per_min']),
                     'held_out_worst_false_alarms_per_min': _r(worst), 'budget_met': bool(worst <= budget_per_min)})
    met = [r for r in rows if r['budget_met']]
    best = met[0] if met else min(
        rows, key=lambda r: (r['held_out_worst_false_alarms_per_min'], -(r['held_out_f1'] or 0.0)))
    return best['target'], rows


def calibrate_threshold(negative_scores: np.ndarray, *, target_rate: float,
                        positive_scores: np.ndarray | None = None) -> tuple[float, dict[str, Any]]:
    """
    Return the lowest threshold publishing at most ``target_rate`` of the negatives.

    ``negative_scores``: the scores of the top non-rejection class on non-target
    utterances (those that would otherwise be published; use -inf for those already
    rejected by class). Returns ``(threshold, record)``; the record gives the rates
    reached (and the kept fraction of ``positive_scores`` when given).
    """
    neg = np.sort(np.asarray(negative_scores, np.float64))
    if not 0.0 <= target_rate < 1.0:
        raise ValueError(f'target_rate must be in [0, 1), got {target_rate}')
    allowed = int(np.floor(target_rate * len(neg)))                # negatives allowed through
    if len(neg) == 0:
        thr = 0.0
    elif allowed >= len(neg):
        thr = 0.0
    else:
        thr = float(np.nextafter(neg[len(neg) - allowed - 1], np.inf))  # just above the (allowed+1)-th highest
        thr = min(max(thr, 0.0), 1.0)
    record = {'threshold': thr, 'negatives': int(len(neg)), 'target_rate': float(target_rate),
              'negative_rate': float(np.mean(neg >= thr)) if len(neg) else None}
    if positive_scores is not None:
        pos = np.asarray(positive_scores, np.float64)
        record['positive_kept'] = float(np.mean(pos >= thr)) if len(pos) else None
    return thr, record


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)
