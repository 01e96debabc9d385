"""
The robot-side runtime without ROS plumbing (never imports rclpy).

Data flow, all in header time::

    message --InputHub.ingest--> buffers --Trigger.observe--> DecisionPoint
            --WindowAssembler.assemble--> Window --(engine: features + models)--> results

- :mod:`.buffers`: :class:`InputSpec`, :class:`InputHub` (conversion, stamp offsets,
  out-of-order / duplicate / loop handling), :class:`FrameBuffer`, :class:`AudioBuffer`;
- :mod:`.triggers`: :class:`RateTrigger`, :class:`FrameTrigger`, :class:`SpeechEndTrigger`,
  :class:`AnyTrigger` producing :class:`DecisionPoint` s;
- :mod:`.window`: :class:`ModalitySpec`, :class:`WindowAssembler`, :class:`Window`;
- :mod:`.vad`: :class:`StreamingVAD`, :func:`detect_speech`;
- :mod:`.stats`: :class:`InputStats`, :class:`RuntimeStats` (diagnostics);
- :mod:`.perception`: :class:`Perception`, the whole runtime for several task models
  (what the fusion node and ``centralnet replay`` call), configured by
  :class:`PerceptionConfig` / :class:`TaskConfig` / :class:`InputConfig`, returning
  :class:`TaskResult` s. Importing it does not import torch (the inference engine,
  :mod:`.engine`, is imported when a :class:`Perception` is built).
"""
from .buffers import (AudioBuffer, AudioWindow, DEFAULT_LOOP_JUMP_NS, FrameBuffer, Ingest, INPUT_KINDS, InputHub,
                      InputSpec)
from .perception import AudioFormatConfig, InputConfig, LabelInfo, Perception, PerceptionConfig, TaskConfig, TaskResult
from .stats import InputStats, RuntimeStats
from .triggers import AnyTrigger, DecisionPoint, FrameTrigger, RateTrigger, SpeechEndTrigger, Trigger
from .vad import detect_speech, SpeechSegment, StreamingVAD, VADConfig
from .window import ModalitySpec, ModalityWindow, Window, WindowAssembler

__all__ = [
    'DEFAULT_LOOP_JUMP_NS', 'INPUT_KINDS', 'AudioBuffer', 'AudioWindow', 'FrameBuffer', 'Ingest', 'InputHub',
    'InputSpec', 'InputStats', 'RuntimeStats', 'AnyTrigger', 'DecisionPoint', 'FrameTrigger', 'RateTrigger',
    'SpeechEndTrigger', 'Trigger', 'SpeechSegment', 'StreamingVAD', 'VADConfig', 'detect_speech',
    'ModalitySpec', 'ModalityWindow', 'Window', 'WindowAssembler',
    'AudioFormatConfig', 'InputConfig', 'LabelInfo', 'Perception', 'PerceptionConfig', 'TaskConfig', 'TaskResult',
]
