"""
CentralNet and the baselines it is compared with, behind one contract (see :mod:`centralnet_ros.fusion.base`).

Each model class registers itself with :func:`~centralnet_ros.fusion.base.register_fusion`;
:func:`fusion_methods` lists them and :func:`build_model` builds one from its config.
"""
from centralnet_ros.fusion.base import (build_model, fusion_methods, FusionConfig, FusionModel, FusionOptions,
                                        FusionOutput, register_fusion)
from centralnet_ros.fusion.baselines import (EarlyFusion, GatedMultimodalUnit, LateFusion, ModalityDropout, ModDrop,
                                             Unimodal)
from centralnet_ros.fusion.centralnet import CentralNet
from centralnet_ros.fusion.losses import fusion_loss, task_loss

__all__ = ['FusionConfig', 'FusionModel', 'FusionOptions', 'FusionOutput', 'CentralNet', 'EarlyFusion',
           'LateFusion', 'GatedMultimodalUnit', 'ModDrop', 'ModalityDropout', 'Unimodal', 'build_model',
           'fusion_methods', 'fusion_loss', 'task_loss', 'register_fusion']
