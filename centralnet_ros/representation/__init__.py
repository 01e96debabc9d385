"""
Representation learning (Hsieh 2017).

Convolutional auto-encoders, the bimodal CAE with a shared middle layer, and the KNN
transfer mapping between modalities.

Only the models live here.  They train with the one loop
(:func:`centralnet_ros.training.trainer.fit`, in :mod:`centralnet_ros.training.autoencoders`),
and the experiment drivers that read datasets live in training/ too:
:mod:`centralnet_ros.training.probe` (the probing table and figures, ``centralnet probe``) and
:mod:`centralnet_ros.training.transfer` (the AVLetters audio-to-video transfer, ``centralnet transfer``).
"""
from centralnet_ros.representation.bimodal import (BimodalCAE, BimodalCAEConfig, BimodalOutput,
                                                   draw_modality_dropout, presence_scale)
from centralnet_ros.representation.cae import CAEConfig, ConvAutoEncoder, pixel_dropout, REPORT_SHAPES, valid_layout
from centralnet_ros.representation.knn import KNNTransferMapping

__all__ = ['CAEConfig', 'ConvAutoEncoder', 'valid_layout', 'pixel_dropout', 'REPORT_SHAPES',
           'BimodalCAEConfig', 'BimodalCAE', 'BimodalOutput', 'draw_modality_dropout', 'presence_scale',
           'KNNTransferMapping']
