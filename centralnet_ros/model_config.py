"""
The architecture of a model as data: :class:`EncoderConfig`, :class:`FusionConfig` and the fusion-method registry.

No torch here, so that what reads a bundle's manifest without running its weights (a
decision process running the bundle's ONNX graph, ``centralnet bundle info``) does not
import it. The networks these configs describe are in :mod:`centralnet_ros.encoders`
and :mod:`centralnet_ros.fusion`, which re-export these names.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Literal

ENCODER_KINDS = ('mlp', 'cnn1d', 'cnn2d', 'cnn3d', 'tcn')


@dataclasses.dataclass
class EncoderConfig:
    """
    One modality's network.

    ``widths`` gives the units (mlp) or channels (cnn) of each level; the number of
    levels is ``len(widths)`` (an ``mlp`` without widths has one level, the flattened
    input, so it is a linear classifier).  ``pool`` is the max-pooling factor after each
    conv level (one int per level, applied to every axis; 1 = no pooling); for ``cnn3d``
    ``temporal_pool`` is the factor on the time axis (default: no temporal pooling).  ``tcn``
    (a temporal convolutional network) levels are residual blocks whose two convolutions are
    dilated by ``dilations`` (one per level; default 1, 2, 4, ...), ``dropout`` between them.
    """

    kind: Literal['mlp', 'cnn1d', 'cnn2d', 'cnn3d', 'tcn']
    input_shape: list[int]
    widths: list[int]
    kernel_size: int = 3
    pool: list[int] | None = None
    temporal_pool: list[int] | None = None
    dropout: float = 0.0          # inside mlp and tcn levels
    head_dropout: float = 0.0     # before the classifier
    batch_norm: bool = True
    dilations: list[int] | None = None   # tcn: the dilation of each level's convolutions

    def __post_init__(self):
        if self.kind not in ENCODER_KINDS:
            raise ValueError(f'encoder kind {self.kind!r} is not one of {ENCODER_KINDS}')
        if (not self.widths and self.kind != 'mlp') or any(w <= 0 for w in self.widths):
            raise ValueError(f'widths must be a non-empty list of positive ints (an mlp may have none: a linear '
                             f'classifier), got {self.widths}')
        rank = {'cnn1d': 2, 'cnn2d': 3, 'cnn3d': 4, 'tcn': 2}.get(self.kind)
        if rank is not None and len(self.input_shape) != rank:
            raise ValueError(f'{self.kind} expects input_shape of {rank} numbers (channels first), '
                             f'got {list(self.input_shape)}')
        if self.dilations is not None and self.kind != 'tcn':
            raise ValueError(f'dilations are for kind tcn, not {self.kind}')
        if self.kind == 'tcn' and self.kernel_size % 2 != 1:
            raise ValueError(f'tcn needs an odd kernel_size (same-length convolutions), got {self.kernel_size}')
        for name in ('pool', 'temporal_pool', 'dilations'):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.widths):
                raise ValueError(f'{name} needs one factor per level ({len(self.widths)}), got {value}')


_REGISTRY: dict[str, type] = {}        # name -> FusionModel subclass (centralnet_ros.fusion)


def register_fusion(name: str):
    """
    Register a :class:`FusionModel` subclass as fusion method ``name`` (as timm's ``register_model``).

    The registry is the one list of fusion methods: :class:`FusionConfig` validates
    ``method`` against it, :func:`build_model` builds from it, and the tests run over it.
    """
    def register(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f'fusion method {name!r} is registered twice ({_REGISTRY[name].__name__}, {cls.__name__})')
        _REGISTRY[name] = cls
        cls.method = name
        return cls
    return register


BUILTIN_METHODS = ('unimodal', 'early', 'late', 'gmu', 'moddrop', 'centralnet')
"""The methods :mod:`centralnet_ros.fusion` registers when it is imported (what a config may name without it)."""


def fusion_methods() -> tuple[str, ...]:
    """Return the registered fusion methods, in registration order."""
    return tuple(_REGISTRY)


@dataclasses.dataclass
class FusionConfig:
    """
    Architecture of a fusion model; saved in the model bundle to rebuild it.

    ``method`` is a registered fusion method (:func:`fusion_methods`).  ``align`` says
    how features of unequal size are brought to one fusion space at a level: ``pad``
    zero-pads channels to the widest modality, ``project`` applies a learned 1x1
    convolution (linear map) to the widest width.  Spatial/temporal sizes that differ
    are average-pooled to the smallest; modalities of different rank (e.g. a 3-D lip
    video and a 2-D MFCC map) meet as globally pooled vectors.  ``members`` > 1 makes the
    model an ensemble of that many copies of the method's network, each from its own initial
    weights, trained on their own losses and deciding by their mean logits
    (:class:`~centralnet_ros.fusion.base.Ensemble`).
    """

    method: str
    modalities: dict[str, EncoderConfig]
    num_classes: int
    task: Literal['multiclass', 'multilabel'] = 'multiclass'
    align: Literal['pad', 'project'] = 'pad'
    unimodal: str | None = None            # for method == 'unimodal'
    fusion_weight_init: float = 1.0        # CentralNet alphas/betas start value
    central_dropout: float = 0.0           # dropout in central / shared dense layers
    hidden: int = 0                        # GMU / ModDrop shared width (0: widest last level)
    moddrop_p: float = 0.5                 # ModDrop: probability of dropping a modality
    modality_dropout: float = 0.0          # any method: drop whole modalities per sample while training
    mixed_rank_grid: int = 1               # unequal-rank features meet as (C x grid^d) vectors; 1: global pooling
    modality_order: list[str] | None = None  # defaults to the order of ``modalities``
    members: int = 1                       # > 1: an ensemble of this many copies, each from its own initial weights

    def __post_init__(self):
        known = dict.fromkeys([*_REGISTRY, *BUILTIN_METHODS])     # the built-in ones without importing torch
        if self.method not in known:
            raise ValueError(f'unknown fusion method {self.method!r}; known: {", ".join(known)}')
        if not self.modalities:
            raise ValueError('at least one modality is needed')
        if self.method == 'unimodal':
            if self.unimodal not in self.modalities:
                raise ValueError(f'method unimodal needs unimodal= one of {list(self.modalities)}, '
                                 f'got {self.unimodal!r}')
        elif len(self.modalities) < 2:
            raise ValueError(f'method {self.method} fuses at least 2 modalities, got {list(self.modalities)}')
        if self.num_classes < 2 and self.task == 'multiclass':
            raise ValueError(f'num_classes must be >= 2, got {self.num_classes}')
        if self.members < 1:
            raise ValueError(f'members must be >= 1 (1: a single model), got {self.members}')
        if self.mixed_rank_grid < 1:
            raise ValueError(f'mixed_rank_grid must be >= 1, got {self.mixed_rank_grid}')
        for name in ('moddrop_p', 'modality_dropout'):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f'{name} must be in [0, 1), got {getattr(self, name)}')
        if self.modality_order is not None and sorted(self.modality_order) != sorted(self.modalities):
            raise ValueError(f'modality_order {self.modality_order} must list exactly {list(self.modalities)}')

    @property
    def names(self) -> list[str]:
        return list(self.modality_order or self.modalities)


SHARED_OPTIONS = ('align', 'fusion_weight_init', 'central_dropout', 'hidden', 'moddrop_p', 'mixed_rank_grid',
                  'members')
"""The :class:`FusionConfig` fields an experiment sets once for all its methods."""


def _shared_options() -> type:
    hints = typing.get_type_hints(FusionConfig)
    fields = [(f.name, hints[f.name], dataclasses.field(default=f.default))
              for f in dataclasses.fields(FusionConfig) if f.name in SHARED_OPTIONS]
    cls = dataclasses.make_dataclass('FusionOptions', fields)
    cls.__module__ = __name__
    cls.__doc__ = ("Fusion settings shared by every method of an experiment (a preset's ``fusion:``): "
                   f'the FusionConfig fields {", ".join(SHARED_OPTIONS)}, with its types and defaults.')
    return cls


FusionOptions = _shared_options()
