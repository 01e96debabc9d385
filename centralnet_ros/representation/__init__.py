"""
Representation learning (Hsieh 2017).

Convolutional auto-encoders, the bimodal CAE with a shared middle layer, and the KNN
transfer mapping between modalities.

The experiment drivers that read datasets live in training/ (this folder imports only torch
and encoders): :mod:`centralnet_ros.training.probe` (the probing table and figures,
``centralnet probe``) and :mod:`centralnet_ros.training.transfer` (the AVLetters
audio-to-video transfer, ``centralnet transfer``).
"""
from centralnet_ros.representation.bimodal import (BimodalCAE, BimodalCAEConfig, BimodalOutput,
                                                   draw_modality_dropout, presence_scale, train_bimodal)
from centralnet_ros.representation.cae import (CAEConfig, ConvAutoEncoder, pixel_dropout, REPORT_SHAPES, train_cae,
                                               valid_layout)
from centralnet_ros.representation.knn import KNNTransferMapping

__all__ = ['CAEConfig', 'ConvAutoEncoder', 'valid_layout', 'pixel_dropout', 'train_cae', 'REPORT_SHAPES',
           'BimodalCAEConfig', 'BimodalCAE', 'BimodalOutput', 'draw_modality_dropout', 'presence_scale',
           'train_bimodal', 'KNNTransferMapping']
