"""
Model inputs of whole recording sessions as the runtime builds them, for training on the robot's own windows.

A spoken clip fed to a model as one whole utterance is not what the robot computes:
on the robot the microphone stream goes through the audio buffer (one resampling,
S16LE quantisation, 20 ms chunks), the voice-activity detector cuts it into segments
of its own (a sentence becomes several, a digit may lose its soft onset or gain the
padding), and the window over each segment is what the speech model sees.  A
rejection class trained only on whole clips rejected every whole digit clip of new
speakers but let a letter through for a third to a half of the same digits played
through the runtime (``benchmarks/results/digits_probe.md``).

:func:`session_windows` writes the utterances of one session as a rosbag2
(:func:`~centralnet_ros.replay.session_bag.write_session_bag`: continuous microphone
stream, silence between utterances) and replays it with
:func:`~centralnet_ros.replay.samples.collect_samples`, the node's own path, so each
window is, bit for bit, what the model would be given on the robot.  Nothing here
knows which speakers or labels a model should learn from: the caller
(``centralnet speech-windows``) chooses them, and the training side reads the
result as plain arrays (:mod:`centralnet_ros.data.session_windows`: an ``.npz`` of
numeric and fixed-width string arrays plus a JSON header; nothing is unpickled).
"""
from __future__ import annotations

from pathlib import Path
import shutil
from typing import Any, Sequence

from centralnet_ros.data.session_windows import Windows
import numpy as np

__all__ = ['session_windows']


def session_windows(name: str, utterances: Sequence[Any], sources: Sequence[str], *, config: Any, bundle: Any,
                    work: str | Path, task: str = 'speech', keep_bag: bool = False, **bag_options: Any) -> Windows:
    """
    Play ``utterances`` (:class:`~centralnet_ros.replay.session_bag.Utterance`) as one session through the runtime.

    Returns the model inputs of every decision that fell inside an utterance (its
    segment runs to the session writer's ``tail_s`` after it), labelled with that
    utterance's label and ``sources[i]``.  ``config``: the node's
    :class:`~centralnet_ros.runtime.perception.PerceptionConfig`; ``bundle``: the
    loaded bundle of ``task`` (its manifest's pipelines make the inputs; its weights
    only decide, which the windows do not depend on).  The bag is written under
    ``work`` and removed afterwards unless ``keep_bag``.  ``bag_options`` go to
    :func:`~centralnet_ros.replay.session_bag.write_session_bag` (``gap_s``, ``noise``, ...).
    """
    from .samples import collect_samples
    from .session_bag import T0_NS, write_session_bag
    if len(utterances) != len(sources):
        raise ValueError(f'{name}: {len(utterances)} utterances but {len(sources)} sources')
    if not utterances:
        raise ValueError(f'{name}: a session needs at least one utterance')
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    bag = work / name
    shutil.rmtree(bag, ignore_errors=True)
    written = write_session_bag(bag, utterances, task=task, **bag_options)
    try:
        got = collect_samples(bag, config, task, labels=[written.labels], bundle=bundle)
    finally:
        if not keep_bag:
            shutil.rmtree(bag, ignore_errors=True)
            written.labels.unlink(missing_ok=True)
    starts = np.array([s['start_s'] for s in written.segments])
    inputs: dict[str, list[np.ndarray]] = {}
    labels, srcs = [], []
    modalities = sorted({m for s in got.samples for m in s.inputs})
    for s in got.samples:
        t = (s.stamp_ns - T0_NS) / 1e9
        k = int(np.searchsorted(starts, t, side='right')) - 1          # the utterance whose segment holds it
        for m in modalities:
            if m not in s.inputs:
                raise ValueError(f'{name}: a decision at {t:.2f} s has no {m!r} input ({s.missing.get(m, "?")})')
            inputs.setdefault(m, []).append(s.inputs[m])
        labels.append(s.label)
        srcs.append(sources[max(k, 0)])
    notes = [f'{name}: {got.decisions} decisions, {len(got.samples)} inside utterances, '
             f'{got.segments_without_decision} of {got.segments} utterances without one']
    n = len(labels)
    return Windows(inputs={m: np.stack(v).astype(np.float32) for m, v in inputs.items()},
                   labels=np.asarray(labels, dtype=str).reshape(n), sources=np.asarray(srcs, dtype=str).reshape(n),
                   sessions=np.full(n, name), notes=notes)
