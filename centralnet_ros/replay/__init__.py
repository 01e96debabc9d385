"""
Rosbag2 replay with the ``rosbags`` library (sqlite3 and MCAP).

:mod:`.msgdefs` registers the message definitions rosbags lacks and reads/writes
bags; the replay evaluation builds on it.
"""
from .msgdefs import (audio_messages, bag_topics, BagMessage, BagReadError, compressed_image_message, image_message,
                      make_typestore, naoqi_audio_message, normalize_msgtype, pose_array_message,
                      read_bag, skeleton2d_message, typestore_factory, write_bag)

__all__ = ['BagMessage', 'BagReadError', 'audio_messages', 'bag_topics',
           'compressed_image_message', 'image_message', 'make_typestore', 'naoqi_audio_message',
           'normalize_msgtype', 'pose_array_message', 'read_bag', 'skeleton2d_message', 'typestore_factory',
           'write_bag']
