"""
ROS message <-> numpy, by field access only.

Every function here reads (or builds) messages through their fields, so the same
code converts messages handed to an rclpy callback, messages decoded from a bag by
the ``rosbags`` library, ``types.SimpleNamespace`` objects and plain dicts. This
module never imports rclpy or rosbags.

Conversions (message -> numpy)
------------------------------
================================  ==========================================  ===========
function                          returns                                      copies?
================================  ==========================================  ===========
:func:`image_to_array` rgb8       ``(H, W, 3)`` uint8, RGB                     no (view)
                       bgr8       ``(H, W, 3)`` uint8, RGB (channel axis       no (view with
                                  reversed by a negative stride)               negative stride)
                       rgba8      ``(H, W, 3)`` uint8, RGB (alpha dropped)     no (view)
                       bgra8      ``(H, W, 3)`` uint8, RGB                     no (view)
                       mono8/8UC1 ``(H, W)`` uint8                             no (view)
                       mono16     ``(H, W)`` uint16                            no (view)
                       16UC1      ``(H, W)`` float32 metres (mm / 1000)        yes (scaling)
                                  or uint16 mm with ``depth_in_metres=False``  no (view)
                       32FC1      ``(H, W)`` float32 metres                    no (view)
:func:`compressed_image_to_array` as above (cv2.imdecode)                     yes (decode)
:func:`audio_to_array`            ``(frames, channels)`` float32 in [-1, 1)    yes, except
                                  and the sample rate                          native F32LE
:func:`naoqi_audio_to_array`      ``(frames, channels)`` float32, ``frequency``  yes (scaling)
:func:`pose_array_to_joints`      ``(J, 3)`` float32 joint positions           yes (gather)
:func:`skeleton2d_to_array`       ``(18, 3)`` float32 (x, y, confidence)       yes (gather)
================================  ==========================================  ===========

Views share memory with the message's ``data`` buffer (``np.shares_memory`` is
true), honour ``step`` row padding through strides, and are returned read-only so a
consumer cannot corrupt the message. Multi-byte data whose ``is_bigendian`` differs
from the machine's byte order is copied into native order; a consumer needing a
C-contiguous array (cv2 often does) calls ``np.ascontiguousarray``.

Depth follows REP 118: ``16UC1`` is millimetres with 0 meaning "no measurement"
(kept as 0.0 after conversion to metres); ``32FC1`` is metres with NaN meaning "no
measurement" (kept, so NaN in a depth image is not malformed).

Malformed input raises :class:`MalformedMessage` with a ``kind`` among
:data:`MALFORMED_KINDS`, and nothing else, whatever the message holds (this is
fuzzed in ``test/test_fuzz_messages.py``).

Files: :mod:`.fields` (checked field access, :class:`MalformedMessage`, stamps),
:mod:`.image`, :mod:`.audio`, :mod:`.skeleton` (message -> numpy) and :mod:`.builders`
(numpy -> message); this package re-exports their public names.

Builders (numpy -> message)
---------------------------
``build_*`` functions take a *factory* ``factory(msgtype, **fields)`` that makes one
message of type ``msgtype`` (``'pkg/msg/Name'``) from its fields, so the caller
chooses the message implementation: :func:`dict_factory` gives plain dicts, the
replay package passes a rosbags typestore (``replay.msgdefs.typestore_factory``)
and ros/ passes a factory resolving rclpy classes. Every field of each message is
given (rosbags dataclasses have no defaults). Bulk arrays are passed as numpy
arrays; :func:`sequences_to_python` turns them into ``array.array`` for rclpy,
whose setters refuse numpy arrays.
"""
from __future__ import annotations

from .audio import (audio_format, AUDIO_SAMPLE_FORMATS, audio_to_array, AudioChunk, AudioFormat, naoqi_audio_to_array,
                    NAOQI_CHANNELS, SAMPLE_RATE_RANGE)
from .builders import (build_audio, build_classification, build_compressed_image, build_event, build_expression,
                       build_header, build_ids_list, build_image, build_label_info, build_live_speech,
                       build_naoqi_audio, build_pose_array, build_skeleton2d, build_vision_info, dict_factory,
                       MessageFactory, sequences_to_python)
from .fields import header_stamp_ns, MALFORMED_KINDS, MalformedMessage, ns_to_stamp, stamp_to_ns
from .image import compressed_image_size, compressed_image_to_array, DEFAULT_MAX_PIXELS, IMAGE_ENCODINGS, image_to_array
from .skeleton import KINECT_V1_JOINTS, pose_array_to_joints, SKELETON2D_JOINTS, skeleton2d_to_array

__all__ = [
    'MALFORMED_KINDS', 'MalformedMessage', 'IMAGE_ENCODINGS', 'AUDIO_SAMPLE_FORMATS',
    'KINECT_V1_JOINTS', 'SKELETON2D_JOINTS', 'NAOQI_CHANNELS', 'SAMPLE_RATE_RANGE',
    'AudioChunk', 'AudioFormat', 'audio_format', 'stamp_to_ns', 'ns_to_stamp', 'header_stamp_ns',
    'image_to_array', 'compressed_image_to_array', 'compressed_image_size', 'DEFAULT_MAX_PIXELS',
    'audio_to_array', 'naoqi_audio_to_array',
    'pose_array_to_joints', 'skeleton2d_to_array',
    'MessageFactory', 'dict_factory', 'sequences_to_python',
    'build_header', 'build_image', 'build_compressed_image', 'build_audio', 'build_naoqi_audio',
    'build_pose_array', 'build_skeleton2d', 'build_classification', 'build_label_info',
    'build_vision_info', 'build_expression', 'build_live_speech', 'build_ids_list', 'build_event',
]
