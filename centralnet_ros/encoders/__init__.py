"""Per-modality networks.  Every encoder exposes its representation level by level
(:meth:`ModalityEncoder.forward_levels`) so that CentralNet can fuse at each level."""
from centralnet_ros.encoders.base import ENCODER_KINDS, EncoderConfig, ModalityEncoder, build_encoder

__all__ = ['ENCODER_KINDS', 'EncoderConfig', 'ModalityEncoder', 'build_encoder']
