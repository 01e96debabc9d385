"""Files a replay writes: predictions, metrics, summary, confusion matrices and the timeline."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .evaluate import assign_truth
from .labels import LabelSegment
from .player import ReplayRun
from ..config import atomic_write_text
from ..runtime.perception import Perception, TaskResult

__all__ = ['write_outputs', 'format_summary', 'plot_timeline', 'result_rows']

_NS = 1_000_000_000


def plot_timeline(results: Sequence[TaskResult], segments: Sequence[LabelSegment], labels: Mapping[str, Sequence[str]],
                  path: Path, *, t0_ns: int, title: str = 'replay timeline', events: Sequence[Any] = ()) -> Path:
    """
    Plot, per task, the ground-truth segments (bars), the decisions and the events, class on the y axis.

    Decisions are dots: green correct, red wrong, grey unlabelled; filled = published,
    hollow = not published. Events are black-edged diamonds at their peak with a line
    from onset to end. One artist per task and kind (not per decision), so the plot
    takes about as long for an hour of decisions as for a minute.
    """
    from ..evaluation.plots import pyplot, save_figure
    plt = pyplot()
    tasks = list(labels)
    heights = [max(1.6, 0.16 * len(labels[t]) + 0.8) for t in tasks]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(11, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={'height_ratios': heights}, sharex=True)
    truth = assign_truth(results, segments)
    for ax, task in zip(axes[:, 0], tasks):
        names = list(labels[task])
        index = {n: i for i, n in enumerate(names)}
        for label, k in index.items():                 # one bar collection per class row
            bars = [((s.start_ns - t0_ns) / _NS, (s.end_ns - s.start_ns) / _NS) for s in segments
                    if s.task == task and s.label == label]
            if bars:
                ax.broken_barh(bars, (k - 0.4, 0.8), facecolors='#c6dbef', edgecolors='none')
        mine = [(r, s) for r, s in zip(results, truth) if r.task == task]
        if mine:
            x = np.asarray([(r.stamp_ns - t0_ns) / _NS for r, _ in mine])
            y = np.asarray([index.get(r.label, -1) for r, _ in mine])
            kind = np.asarray([0 if s is None else (1 if s.label == r.label else 2) for r, s in mine])
            pub = np.asarray([r.published for r, _ in mine], bool)
            for code, color in ((0, '#999999'), (1, '#2ca02c'), (2, '#d62728')):
                for filled in (True, False):
                    sel = (kind == code) & (pub == filled)
                    if sel.any():
                        ax.scatter(x[sel], y[sel], s=14, zorder=3, facecolors=color if filled else 'none',
                                   edgecolors=color, linewidths=0.8, rasterized=len(x) > 2000)
        evs = [e for e in events if e.task == task and e.label in index]
        if evs:
            ey = np.asarray([index[e.label] for e in evs], float)
            ax.hlines(ey + 0.25, [(e.onset_ns - t0_ns) / _NS for e in evs], [(e.end_ns - t0_ns) / _NS for e in evs],
                      colors='black', linewidths=1.2, zorder=4)
            ax.scatter([(e.peak_ns - t0_ns) / _NS for e in evs], ey + 0.25, marker='D', s=22, zorder=5,
                       facecolors='#ffbf00', edgecolors='black', linewidths=0.6)
        ax.set_yticks(range(len(names)), names, fontsize=6 if len(names) > 14 else 7)
        ax.set_ylim(-0.7, len(names) - 0.3)
        ax.set_ylabel(task, fontsize=9)
        ax.grid(axis='x', alpha=0.3)
    axes[-1, 0].set_xlabel('time from the start of the bag (s)')
    axes[0, 0].set_title(title + '  (bars: truth; dots: decisions, green correct, red wrong, grey unlabelled; '
                         'hollow: not published; diamonds: events, onset to end)', fontsize=8)
    return save_figure(fig, path)


def _fmt_pct(x: float | None) -> str:
    return '   -  ' if x is None else f'{x * 100:5.1f} %'


def format_summary(metrics: Mapping[str, dict], run: ReplayRun) -> str:
    """Return the terminal summary: per task accuracy, decisions and latency; replay throughput."""
    lines = [f'{"task":<9} {"decisions":>9} {"published":>9} {"scored":>6} {"acc":>8} {"acc(pub)":>8} '
             f'{"segments":>8} {"seg acc":>8} {"chance":>7}  latency ms p50/p95/p99']
    for task, m in metrics.items():
        lat = m['latency_ms']
        latency = '-' if lat['p50'] is None else f'{lat["p50"]:.2f}/{lat["p95"]:.2f}/{lat["p99"]:.2f}'
        lines.append(f'{task:<9} {m["decisions"]:>9} {m["published"]:>9} {m["labelled_decisions"]:>6} '
                     f'{_fmt_pct(m["decision_accuracy"]):>8} {_fmt_pct(m["published_accuracy"]):>8} '
                     f'{m["segments"]:>8} {_fmt_pct(m["segment_accuracy"]):>8} {_fmt_pct(m["chance"]):>7}  {latency}')
    for task, m in metrics.items():
        e = m.get('events')
        if e is None:
            continue
        fa = e['false_alarms_per_min']
        lat = e['latency_s']['p50']
        lines.append(f'{task:<9} events {e["events"]}: ' + (
            f'on a recording without any {task} instance ({e["events_on_no_target"]} published)' if e['no_target']
            else f'{e["matched"]} of {e["instances"]} instances matched, precision {_fmt_pct(e["precision"]).strip()}, '
                 f'recall {_fmt_pct(e["recall"]).strip()}, F1 {_fmt_pct(e["f1"]).strip()}, '
                 f'{e["substitutions"]} wrong label') +
            f'; false alarms {e["false_alarms"]} ({"-" if fa is None else f"{fa:.2f}"} / min of non-target time)' +
            ('' if lat is None else f'; latency after the instance p50 {lat:.2f} s'))
    lines.append(f'replay: {run.messages} messages, {run.bag_duration_s:.1f} s of recording in {run.wall_s:.2f} s '
                 f'({run.messages_per_s:,.0f} msg/s, {run.real_time_factor:.0f}x real time)')
    if run.incomplete:
        lines.append(f'INCOMPLETE: the replay ended early, these figures cover what was read before: {run.incomplete}')
    return '\n'.join(lines)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by None (JSON has no such numbers)."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json(obj: Any, **kwargs: Any) -> str:
    """Strict JSON (non-finite numbers become null)."""
    return json.dumps(_finite(obj), allow_nan=False, default=_json_default, **kwargs)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f'{type(obj).__name__} is not JSON serialisable')


def write_outputs(out: str | Path, run: ReplayRun, metrics: Mapping[str, dict], segments: Sequence[LabelSegment],
                  perception: Perception, *, extra: Mapping[str, Any] | None = None, plots: bool = True) -> dict:
    """
    Write ``predictions.jsonl``, ``metrics.json``, ``confusion_<task>.png``, ``timeline.png`` and ``summary.txt``.

    Each goes into ``out``, written atomically.

    :return: ``{name: path}``.
    """
    from ..evaluation.plots import plot_confusion
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    truth = assign_truth(run.results, segments)
    lines = []
    for r, s in zip(run.results, truth):
        d = r.to_dict()
        d['time_s'] = round((r.stamp_ns - run.bag_start_ns) / _NS, 6)
        d['truth'] = None if s is None else s.label
        d['correct'] = None if s is None else (s.label == r.label)
        lines.append(_json(d))
    written['predictions'] = atomic_write_text(out / 'predictions.jsonl', '\n'.join(lines) + ('\n' if lines else ''))
    ev_lines = []
    for e in run.events:
        d = e.to_dict()
        d.update({k: round((getattr(e, k) - run.bag_start_ns) / _NS, 6) for k in ('onset_ns', 'peak_ns', 'end_ns')})
        d = {k.replace('_ns', '_s') if k in ('onset_ns', 'peak_ns', 'end_ns') else k: v for k, v in d.items()}
        ev_lines.append(json.dumps(d, default=_json_default))
    written['events'] = atomic_write_text(out / 'events.jsonl', '\n'.join(ev_lines) + ('\n' if ev_lines else ''))
    payload = {
        'replay': {'messages': run.messages, 'bag_duration_s': run.bag_duration_s, 'wall_s': run.wall_s,
                   'runtime_s': run.runtime_s, 'messages_per_s': run.messages_per_s,
                   'real_time_factor': run.real_time_factor, 'complete': run.incomplete is None,
                   'incomplete_reason': run.incomplete},
        'tasks': metrics,
        'ground_truth_segments': len(segments),
        'stats': perception.stats(),
        **dict(extra or {}),
    }
    written['metrics'] = atomic_write_text(out / 'metrics.json', _json(payload, indent=2))
    written['summary'] = atomic_write_text(out / 'summary.txt', format_summary(metrics, run) + '\n')
    if plots:
        labels = {t: m['labels'] for t, m in metrics.items()}
        for task, m in metrics.items():
            if m['labelled_decisions']:
                acc = m['decision_accuracy']
                written[f'confusion_{task}'] = plot_confusion(
                    np.asarray(m['confusion']), m['labels'], out / f'confusion_{task}.png',
                    title=f'{task}: {m["labelled_decisions"]} scored decisions, accuracy {acc * 100:.1f} %')
            e = m.get('events')
            if e and e.get('instances'):
                written[f'events_{task}'] = plot_confusion(
                    np.asarray(e['confusion']), e['confusion_columns'][:-1], out / f'events_{task}.png',
                    columns=e['confusion_columns'],
                    title=f'{task} events per labelled instance: F1 {e["f1"] * 100:.1f} %, '
                          f'{e["false_alarms"]} false alarms')
        if labels:
            written['timeline'] = plot_timeline(run.results, segments, labels, out / 'timeline.png',
                                                t0_ns=run.bag_start_ns, events=run.events)
    return written


def result_rows(results: Iterable[TaskResult]) -> list[dict]:
    """``TaskResult.to_dict`` of each result (for tests and comparisons)."""
    return [r.to_dict() for r in results]
