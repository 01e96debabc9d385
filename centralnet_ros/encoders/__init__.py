"""
Per-modality networks.

Every encoder exposes its representation level by level
(:meth:`ModalityEncoder.forward_levels`) so that CentralNet can fuse at each level.
"""
from centralnet_ros.encoders.base import build_encoder, ENCODER_KINDS, EncoderConfig, ModalityEncoder

__all__ = ['ENCODER_KINDS', 'EncoderConfig', 'ModalityEncoder', 'build_encoder']
