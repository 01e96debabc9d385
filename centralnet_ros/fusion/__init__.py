"""CentralNet and the baselines it is compared with, behind one contract (see :mod:`centralnet_ros.fusion.base`)."""
from centralnet_ros.fusion.base import FUSION_METHODS, FusionConfig, FusionModel, FusionOutput
from centralnet_ros.fusion.baselines import (EarlyFusion, GatedMultimodalUnit, LateFusion, ModalityDropout, ModDrop,
                                             Unimodal)
from centralnet_ros.fusion.centralnet import CentralNet
from centralnet_ros.fusion.losses import fusion_loss, task_loss

MODEL_CLASSES = {
    'unimodal': Unimodal,
    'early': EarlyFusion,
    'late': LateFusion,
    'gmu': GatedMultimodalUnit,
    'moddrop': ModDrop,
    'centralnet': CentralNet,
}


def build_model(config: FusionConfig) -> FusionModel:
    """Build the model a config describes (the bundle loader and the trainer both use this)."""
    return MODEL_CLASSES[config.method](config)


__all__ = ['FUSION_METHODS', 'FusionConfig', 'FusionModel', 'FusionOutput', 'CentralNet', 'EarlyFusion',
           'LateFusion', 'GatedMultimodalUnit', 'ModDrop', 'ModalityDropout', 'Unimodal', 'build_model',
           'fusion_loss', 'task_loss']
