"""
Plan a task from its bundle manifest: which input feeds each modality, how, and when to decide.

:func:`plan_task` turns a task's manifest modalities into :class:`ModalityPlan` s (the
input read, the window spec, the feature pipeline and its parameters, the expected
feature shape); :func:`trigger_key` / :func:`make_trigger` say when the task decides
(tasks with the same key share one trigger); :func:`input_spec` sizes each input's
buffer from the longest window any task reads from it. Configuration errors raise
here, naming the task and the modality; nothing here runs per message.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import numpy as np

from .adaptation import AdaptationConfig, VoiceAdaptation
from .buffers import INPUT_KINDS, InputSpec
from .perception_config import PerceptionConfig, SOURCE_KINDS, TaskConfig
from .triggers import FrameTrigger, RateTrigger, SpeechEndTrigger, Trigger
from .vad import StreamingVAD, VADConfig
from .window import WindowSpec
from ..features import pipelines as P

__all__ = ['ModalityPlan', 'plan_task', 'trigger_key', 'make_trigger', 'input_spec']

_NS = 1_000_000_000


@dataclasses.dataclass
class ModalityPlan:
    """How one modality of one task is fed: input, window, feature pipeline and expected shape."""

    name: str
    input: str                          # noqa: A003 (the name window.WindowSpec uses for the same field)
    source: str
    pipeline_name: str
    pipeline: Callable[..., np.ndarray]
    params: dict[str, Any]
    shape: tuple[int, ...]
    spec: WindowSpec
    fps: float | None
    channel: int
    adaptation: VoiceAdaptation | None = None     # per-voice normalisation of the features (runtime.adaptation)


def plan_task(config: PerceptionConfig, task: str, tc: TaskConfig, model: Any,
              pipelines: Mapping[str, Callable[..., np.ndarray]] | None = None) -> list[ModalityPlan]:
    """Plan every modality of ``model`` (an engine ``TaskModel``) for ``task``; errors name the modality."""
    manifest = model.manifest
    speech = tc.trigger.startswith('speech_end')
    max_age = int((tc.max_data_age_s if tc.max_data_age_s is not None else config.max_data_age_s) * _NS)
    pad = int(tc.segment_padding_s * _NS)
    plans = []
    for name in model.modalities:
        ms = manifest.modalities[name]
        inp = tc.sources.get(name, ms.source)
        ic = config.inputs.get(inp)
        if ic is None:
            raise ValueError(f'task {task}: modality {name!r} reads input {inp!r} (source {ms.source}), which is '
                             f'not configured; inputs: {sorted(config.inputs)} (set TaskConfig.sources)')
        if ic.kind not in SOURCE_KINDS.get(ms.source, ()):
            raise ValueError(f'task {task}: modality {name!r} needs a {ms.source} input '
                             f'({" or ".join(SOURCE_KINDS.get(ms.source, ()))}), but input {inp!r} is {ic.kind}')
        window_s = tc.window_s or ms.window_s or 0.0
        audio = ms.source == 'audio'
        if audio:
            spec = WindowSpec(name, inp, 'audio', window_ns=int((window_s or 1.0) * _NS), max_age_ns=max_age,
                              min_coverage=tc.min_audio_coverage, use_segment=speech, segment_padding_ns=pad,
                              sample_rate=int(ms.sample_rate) if ms.sample_rate else None)
        elif speech or window_s > 0:
            spec = WindowSpec(name, inp, 'sequence', window_ns=int((window_s or 1.0) * _NS), max_age_ns=max_age,
                              use_segment=speech, segment_padding_ns=pad)
        else:
            spec = WindowSpec(name, inp, 'last_frames', num_frames=1, max_age_ns=max_age)
        fn = (pipelines or {}).get(ms.pipeline)
        if fn is None:
            try:
                fn = P.get_pipeline(ms.pipeline)
            except KeyError as exc:
                raise KeyError(f'task {task}: modality {name!r}: {exc.args[0]}') from None
        plans.append(ModalityPlan(name, inp, ms.source, ms.pipeline, fn, dict(ms.preprocessing),
                                  tuple(ms.input_shape), spec, None if audio else ms.frame_rate, ic.channel,
                                  _adaptation(config, task, name, ms.normalisation)))
    return plans


def _adaptation(config: PerceptionConfig, task: str, name: str, normalisation: dict) -> VoiceAdaptation | None:
    """Per-voice adaptation of a modality whose manifest records a normalisation (else None)."""
    if not normalisation or normalisation.get('mode', 'per_voice') == 'none':
        return None
    from ..config import from_dict
    from ..features.normalisation import SpeakerNormalisation
    norm = from_dict(SpeakerNormalisation, dict(normalisation), _where=f'{task}.{name}.normalisation')
    return VoiceAdaptation(norm, AdaptationConfig(enabled=config.speaker_adaptation))


def trigger_key(config: PerceptionConfig, task: str, tc: TaskConfig, plans: list[ModalityPlan]) -> tuple:
    """Return the key of ``task``'s trigger: ``('rate', hz, inputs)``, ``('frame' | 'speech_end', input)``."""
    kind, _, explicit = tc.trigger.partition(':')
    if kind == 'rate':
        return ('rate', float(tc.rate_hz), tuple(sorted({p.input for p in plans})))
    if explicit:
        if explicit not in config.inputs:
            raise ValueError(f'task {task}: trigger {tc.trigger!r} names input {explicit!r}, which is not '
                             f'configured; inputs: {sorted(config.inputs)}')
        want = SOURCE_KINDS['audio'] if kind == 'speech_end' else INPUT_KINDS
        if config.inputs[explicit].kind not in want:
            raise ValueError(f'task {task}: trigger {tc.trigger!r} needs an audio input, '
                             f'{explicit!r} is {config.inputs[explicit].kind}')
        return (kind, explicit)
    if kind == 'frame':
        frames = [p.input for p in plans if p.source != 'audio']
        if not frames:
            raise ValueError(f'task {task}: trigger frame needs an image, depth or skeleton modality; '
                             f'use frame:<input> to name one')
        return ('frame', frames[0])
    audio = [p.input for p in plans if p.source == 'audio']
    if not audio:
        raise ValueError(f'task {task}: trigger speech_end needs an audio modality; use speech_end:<input> '
                         f'to run the voice detector on another audio input')
    return ('speech_end', audio[0])


def make_trigger(config: PerceptionConfig, key: tuple, reads: set[str] | None = None) -> Trigger:
    """
    Build the trigger for a :func:`trigger_key`.

    ``reads`` is every input the tasks on this trigger read.  ``decision_delay_s`` waits for
    other inputs stamped up to the decision time; a frame trigger whose tasks read only its
    own input has nothing to wait for (its frames are stored in order), so it decides at once.
    """
    delay = int(config.decision_delay_s * _NS)
    if key[0] == 'rate':
        return RateTrigger(rate_hz=key[1], inputs=key[2], delay_ns=delay)
    if key[0] == 'frame':
        return FrameTrigger(key[1], delay_ns=0 if reads is not None and set(reads) <= {key[1]} else delay)
    return SpeechEndTrigger(key[1], vad=StreamingVAD(VADConfig(**config.vad)), delay_ns=delay)


def input_spec(config: PerceptionConfig, name: str, plans: Mapping[str, list[ModalityPlan]]) -> InputSpec:
    """Return the buffer spec of input ``name``: retention from the longest window any task reads from it."""
    ic = config.inputs.get(name)
    if ic is None:
        raise ValueError(f'input {name!r} is not configured; inputs: {sorted(config.inputs)}')
    vad = VADConfig(**config.vad)
    longest = 0.0
    for ps in plans.values():
        for p in ps:
            if p.input != name:
                continue
            s = p.spec
            span = s.window_ns / _NS
            if s.use_segment:
                span = max(span, vad.max_speech_ms / 1e3 + vad.hangover_ms / 1e3 + 2 * s.segment_padding_ns / _NS)
            longest = max(longest, span)
    need = longest + config.decision_delay_s + 1.0
    retention = ic.retention_s if ic.retention_s is not None else max(10.0, need)
    max_items = ic.max_items
    if max_items is None and ic.kind in ('image', 'compressed_image'):
        # frames are views of their messages: bound the memory, but hold the longest window
        max_items = int(min(256, max(64, math.ceil(need * config.frame_rate_hint_hz * 1.2))))
    fmt = None
    if ic.audio_format is not None:
        from .. import messages as M
        fmt = M.AudioFormat(ic.audio_format.channels, ic.audio_format.sample_rate, ic.audio_format.sample_format)
    return InputSpec(name, ic.kind, offset_ns=int(round(ic.offset_s * _NS)), retention_ns=int(retention * _NS),
                     max_items=max_items, stamp_marks=ic.stamp_marks,
                     contiguity_tolerance_ns=(None if ic.contiguity_tolerance_s is None
                                              else int(ic.contiguity_tolerance_s * _NS)),
                     audio_format=fmt, channels=ic.naoqi_channels, num_joints=ic.num_joints,
                     allow_nan_joints=ic.allow_nan_joints, depth_in_metres=ic.depth_in_metres,
                     max_pixels=ic.max_pixels,
                     max_bytes=None if ic.max_buffer_mb is None else int(ic.max_buffer_mb * 2 ** 20))
