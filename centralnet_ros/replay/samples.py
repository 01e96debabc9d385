"""
Training samples from recordings, made by the robot's own path.

:func:`collect_samples` plays a rosbag2 recording through
:class:`~centralnet_ros.runtime.perception.Perception` exactly as ``centralnet
replay`` and the node do (same buffers, triggers, windows and feature pipelines from
the bundle manifest), and records, at every decision, the arrays the runtime handed
to the model. A decision whose header stamp falls inside a labelled segment of its
task becomes a sample with that segment's label. There is no second data path: a
sample is, bit for bit, what the model saw on the robot at that stamp (tested
against a plain replay in ``test/test_finetune.py``).

Labels come from files (:func:`~centralnet_ros.replay.label_import.load_labels`:
ELAN, Audacity, CSV, YAML) or, without files, from the bag's ``/labels/<task>``
topics. Each bag is one *session*: fine-tuning splits train / validation / test by
session, never inside one.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ['Sample', 'SessionSamples', 'collect_samples', 'RecordingModel']


@dataclasses.dataclass
class Sample:
    """One decision of the runtime inside a labelled segment: the model inputs and the segment's label."""

    session: str
    stamp_ns: int
    label: str
    inputs: dict[str, np.ndarray]              # modality -> model input (no batch axis), as fed to the model
    missing: dict[str, str]                    # modality -> why the runtime did not feed it


@dataclasses.dataclass
class SessionSamples:
    """The samples of one bag, with what was decided outside every label and where the labels came from."""

    session: str
    bag: Path
    samples: list[Sample]
    decisions: int
    unlabelled: int
    segments: int
    segments_without_decision: int
    labels_from: str
    notes: list[str]


class RecordingModel:
    """
    Wraps a :class:`~centralnet_ros.runtime.engine.TaskModel` and records the inputs of every ``classify`` call.

    Everything else is delegated, so the runtime cannot tell it apart from the model.
    """

    def __init__(self, model: Any):
        self._model = model
        self.records: list[tuple[int, dict[str, np.ndarray]]] = []

    def classify(self, inputs: Mapping[str, np.ndarray | None], *, stamp_ns: int = 0, **kwargs):
        decision = self._model.classify(inputs, stamp_ns=stamp_ns, **kwargs)
        if decision is not None:
            self.records.append((int(stamp_ns), {m: np.array(x, dtype=np.float32, copy=True)
                                                 for m, x in inputs.items() if x is not None}))
        return decision

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def collect_samples(bag: str | Path, config: Any, task: str, *, labels: Sequence[str | Path] | None = None,
                    topics: Mapping[str, str] | None = None, bundle: Any = None, label_prefix: str = '/labels/',
                    label_time_base: str | None = None, progress: bool = False,
                    backend: str | None = 'torch') -> SessionSamples:
    """
    Replay ``bag`` through the runtime for ``task`` and return its labelled decisions as samples.

    ``config``: a :class:`~centralnet_ros.runtime.perception.PerceptionConfig` (the
    node's; only ``task`` is run). ``labels``: ``[TASK=]FILE`` label files for this
    bag (default: its ``/labels/<task>`` topics). ``bundle``: an already loaded
    :class:`~centralnet_ros.bundle.io.Bundle` for ``task`` (else the config's).
    ``topics``: ``input -> topic`` overrides as for ``centralnet replay``.
    Labels need not be classes of the bundle (a new vocabulary). ``backend``: the
    inference backend while collecting (torch by default: the samples are the model's
    inputs, which do not depend on it; None keeps the config's).
    """
    from ..runtime.perception import Perception
    from .evaluate import assign_truth
    from .label_import import load_labels
    from .player import replay_bag
    from .topics import bag_info, map_topics
    bag = Path(bag)
    if task not in config.tasks:
        raise ValueError(f'task {task!r} is not configured; tasks: {sorted(config.tasks)}')
    cfg = dataclasses.replace(config, tasks={task: config.tasks[task]},
                              inputs={k: dataclasses.replace(v) for k, v in config.inputs.items()},
                              backend=backend or config.backend, warmup=0 if backend else config.warmup)
    info = bag_info(bag)
    mapping = map_topics(info, cfg, topics, label_prefix=label_prefix)
    segments = None
    if labels:
        segments = [s for s in load_labels(labels, bag_start_ns=info.start_ns, time_base=label_time_base)
                    if s.task == task]
    perception = Perception(cfg, bundles={task: bundle} if bundle is not None else None)
    try:
        state = perception.tasks[task]
        recorder = RecordingModel(state.model)
        state.model = recorder
        run = replay_bag(bag, perception, mapping, info=info, progress=progress, label_prefix=label_prefix)
        state.model = recorder._model
    finally:
        perception.close()
    labels_from = 'files: ' + ', '.join(map(str, labels)) if labels else 'bag topics'
    if segments is None:
        segments = [s for s in run.label_segments if s.task == task]
    results = [r for r in run.results if r.task == task]
    if len(results) != len(recorder.records) or any(r.stamp_ns != s for r, (s, _) in zip(results, recorder.records)):
        raise RuntimeError(f'{bag}: {len(results)} decisions but {len(recorder.records)} recorded model calls')
    truth = assign_truth(results, segments)
    samples = []
    hit = set()
    for r, (stamp, inputs), seg in zip(results, recorder.records, truth):
        if seg is None:
            continue
        hit.add(seg)
        samples.append(Sample(session=bag.name, stamp_ns=stamp, label=seg.label, inputs=inputs,
                              missing=dict(r.missing)))
    notes = mapping.notes + mapping.missing_notes(perception.inputs)
    return SessionSamples(session=bag.name, bag=bag, samples=samples, decisions=len(results),
                          unlabelled=len(results) - len(samples), segments=len(segments),
                          segments_without_decision=len(set(segments) - hit), labels_from=labels_from, notes=notes)
