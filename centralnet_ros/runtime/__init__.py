"""
The robot-side runtime without ROS plumbing (never imports rclpy).

Data flow, all in header time::

    message --InputHub.ingest--> buffers --Trigger.observe--> DecisionPoint
            --WindowAssembler.assemble--> DecisionWindow --(engine: features + models)--> results

- :mod:`.buffers`: :class:`InputSpec`, :class:`InputHub` (conversion, stamp offsets,
  out-of-order / duplicate / loop handling), :class:`FrameBuffer`, :class:`AudioBuffer`;
- :mod:`.triggers`: :class:`RateTrigger`, :class:`FrameTrigger`, :class:`SpeechEndTrigger`,
  :class:`AnyTrigger` producing :class:`DecisionPoint` s;
- :mod:`.window`: :class:`WindowSpec`, :class:`WindowAssembler`, :class:`DecisionWindow`;
- :mod:`.vad`: :class:`StreamingVAD`, :func:`detect_speech`;
- :mod:`.stats`: :class:`InputStats`, :class:`RuntimeStats` (diagnostics);
- :mod:`.perception_config`: :class:`PerceptionConfig` / :class:`TaskConfig` /
  :class:`InputConfig` (filled from node parameters by :mod:`centralnet_ros.node_params`);
- :mod:`.plan`: a task planned from its bundle manifest (inputs, windows, features, trigger);
- :mod:`.perception`: :class:`Perception`, the whole runtime for several task models
  (what the fusion node and ``centralnet replay`` call), returning :class:`TaskResult` s;
  ``store`` (ingest) and ``decide`` are separate steps. Importing it does not import torch (the inference engine,
  :mod:`.engine`, is imported when a :class:`Perception` is built).
"""
from .buffers import (AudioBuffer, AudioWindow, DEFAULT_LOOP_JUMP_NS, FrameBuffer, Ingest, INPUT_KINDS, InputHub,
                      InputSpec)
from .perception import DueDecision, LabelInfo, Perception, TaskResult
from .perception_config import AudioFormatConfig, InputConfig, PerceptionConfig, TaskConfig
from .stats import InputStats, RuntimeStats
from .triggers import AnyTrigger, DecisionPoint, FrameTrigger, RateTrigger, SpeechEndTrigger, Trigger
from .vad import detect_speech, SpeechSegment, StreamingVAD, VADConfig
from .window import DecisionWindow, ModalityWindow, WindowAssembler, WindowSpec

__all__ = [
    'DEFAULT_LOOP_JUMP_NS', 'INPUT_KINDS', 'AudioBuffer', 'AudioWindow', 'FrameBuffer', 'Ingest', 'InputHub',
    'InputSpec', 'InputStats', 'RuntimeStats', 'AnyTrigger', 'DecisionPoint', 'FrameTrigger', 'RateTrigger',
    'SpeechEndTrigger', 'Trigger', 'SpeechSegment', 'StreamingVAD', 'VADConfig', 'detect_speech',
    'WindowSpec', 'ModalityWindow', 'DecisionWindow', 'WindowAssembler',
    'AudioFormatConfig', 'DueDecision', 'InputConfig', 'LabelInfo', 'Perception', 'PerceptionConfig', 'TaskConfig',
    'TaskResult',
]
