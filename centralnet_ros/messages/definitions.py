"""
The ``.msg`` texts of every interface this project reads, writes or publishes beyond the ROS 2 store.

One place for them: rosbags registers them (:func:`centralnet_ros.replay.msgdefs.make_typestore`),
``tools/ros_wheels.sh`` generates the interface packages PyPI lacks from them
(:mod:`centralnet_ros.replay.interface_packages`: vision_msgs, audio_common_msgs, hri_msgs,
naoqi_bridge_msgs and this project's centralnet_msgs), and ``docs/ros_interface.md`` quotes
this project's own.  Upstream definitions must hash-equal upstream (``test/test_interface_hashes.py``).
"""
from __future__ import annotations

MSG_DEFINITIONS: dict[str, str] = {
    # audio_common_msgs (ros-drivers/audio_common, ros2 branch)
    'audio_common_msgs/msg/AudioData': """\
# raw or encoded audio bytes
uint8[] data
""",
    'audio_common_msgs/msg/AudioDataStamped': """\
std_msgs/Header header
audio_common_msgs/AudioData audio
""",
    'audio_common_msgs/msg/AudioInfo': """\
uint8 channels        # number of interleaved channels
uint32 sample_rate    # Hz
string sample_format  # GStreamer name, e.g. S16LE
uint32 bitrate        # bits per second
string coding_format  # e.g. wave (raw PCM), mp3
""",
    # naoqi_bridge_msgs (ros-naoqi/naoqi_bridge_msgs2), published by naoqi_driver
    'naoqi_bridge_msgs/msg/AudioBuffer': """\
std_msgs/Header header   # stamped by naoqi_driver when it publishes
uint16 frequency         # sample rate, Hz
uint8 CHANNEL_FRONT_LEFT=0
uint8 CHANNEL_FRONT_CENTER=1
uint8 CHANNEL_FRONT_RIGHT=2
uint8 CHANNEL_REAR_LEFT=3
uint8 CHANNEL_REAR_CENTER=4
uint8 CHANNEL_REAR_RIGHT=5
uint8 CHANNEL_SURROUND_LEFT=6
uint8 CHANNEL_SURROUND_RIGHT=7
uint8 CHANNEL_SUBWOOFER=8
uint8 CHANNEL_LFE=9
uint8[] channel_map      # channel order of data
int16[] data             # interleaved samples
""",
    # vision_msgs 4.x (Humble, Jazzy)
    'vision_msgs/msg/ObjectHypothesis': """\
string class_id
float64 score
""",
    'vision_msgs/msg/Classification': """\
std_msgs/Header header
ObjectHypothesis[] results
""",
    'vision_msgs/msg/VisionClass': """\
uint16 class_id
string class_name
""",
    'vision_msgs/msg/LabelInfo': """\
std_msgs/Header header
vision_msgs/VisionClass[] class_map
float32 threshold
""",
    'vision_msgs/msg/VisionInfo': """\
std_msgs/Header header
string method
string database_location
int32 database_version
""",
    # hri_msgs 2.0.0 (ROS4HRI, the first ROS 2 release)
    'hri_msgs/msg/NormalizedPointOfInterest2D': """\
# normalised image coordinates in [0, 1] and a confidence c in [0, 1]
float32 x
float32 y
float32 c
""",
    'hri_msgs/msg/NormalizedRegionOfInterest2D': """\
std_msgs/Header header
float32 xmin
float32 ymin
float32 xmax
float32 ymax
float32 c
""",
    'hri_msgs/msg/Skeleton2D': """\
std_msgs/Header header
# keypoint codes, OpenPose COCO-18 order
uint8 NOSE = 0
uint8 NECK = 1
uint8 RIGHT_SHOULDER = 2
uint8 RIGHT_ELBOW = 3
uint8 RIGHT_WRIST = 4
uint8 LEFT_SHOULDER = 5
uint8 LEFT_ELBOW = 6
uint8 LEFT_WRIST = 7
uint8 RIGHT_HIP = 8
uint8 RIGHT_KNEE = 9
uint8 RIGHT_ANKLE = 10
uint8 LEFT_HIP = 11
uint8 LEFT_KNEE = 12
uint8 LEFT_ANKLE = 13
uint8 LEFT_EYE = 14
uint8 RIGHT_EYE = 15
uint8 LEFT_EAR = 16
uint8 RIGHT_EAR = 17
NormalizedPointOfInterest2D[18] skeleton
""",
    'hri_msgs/msg/Expression': """\
std_msgs/Header header
string NEUTRAL="neutral"
string ANGRY="angry"
string SAD="sad"
string HAPPY="happy"
string SURPRISED="surprised"
string DISGUSTED="disgusted"
string SCARED="scared"
string PLEADING="pleading"
string VULNERABLE="vulnerable"
string DESPAIRED="despaired"
string GUILTY="guilty"
string DISAPPOINTED="disappointed"
string EMBARRASSED="embarrassed"
string HORRIFIED="horrified"
string SKEPTICAL="skeptical"
string ANNOYED="annoyed"
string FURIOUS="furious"
string SUSPICIOUS="suspicious"
string REJECTED="rejected"
string BORED="bored"
string TIRED="tired"
string ASLEEP="asleep"
string CONFUSED="confused"
string AMAZED="amazed"
string EXCITED="excited"
string expression
float32 valence     # -1 .. 1
float32 arousal     # -1 .. 1
float32 confidence  # 0 .. 1
""",
    'hri_msgs/msg/LiveSpeech': """\
std_msgs/Header header
string incremental
string final
float64 confidence
string language     # IETF language code, e.g. en-GB (hri_msgs 2.0.0; 2.1 adds locale)
""",
    'hri_msgs/msg/IdsList': """\
std_msgs/Header header
string[] ids
""",
    # centralnet_msgs: this project's own interface (no upstream), the events fusion_node publishes
    'centralnet_msgs/msg/Event': """\
# One thing that happened (a performed gesture, an accepted utterance), published once when decided.
# header.stamp: when it was decided (header time of the decision that closed it);
# header.frame_id: the frame of the input it was decided from.
std_msgs/Header header
string task                        # the task that detected it (e.g. gesture), as in ~/<task>
string label                       # class name, one of ~/<task>/label_info
float32 score                      # the label's highest (smoothed) posterior over the event
builtin_interfaces/Time onset      # first decision at or above the task's on-threshold (utterance: its start)
builtin_interfaces/Time peak       # decision where the posterior peaked (utterance: its middle)
builtin_interfaces/Time end        # when the event closed (utterance: its end)
uint32 decisions                   # decisions that made it
string person_id                   # ROS4HRI id of the person, empty when not per person
""",
}
"""``'pkg/msg/Name'`` -> ``.msg`` text of every definition registered on top of the ROS 2 store."""
