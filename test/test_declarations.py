"""
One name, one declaration: where two places must name the same things, a test says so.

Tasks are declared for the robot in :data:`centralnet_ros.node_params.TASKS` and for
training in :data:`centralnet_ros.training.train_cli.DEFAULT_PRESETS` (the preset that
builds each shipped bundle); the shipped bundles under ``models/`` are the third witness.
Fusion methods come from one registry; modality sources from the manifest's
:data:`~centralnet_ros.bundle.manifest.SOURCES`.
"""
from pathlib import Path

from centralnet_ros import node_params
from centralnet_ros.bundle.io import read_manifest
from centralnet_ros.bundle.manifest import SOURCES
from centralnet_ros.fusion import fusion_methods, FusionModel
from centralnet_ros.fusion.base import Ensemble
from centralnet_ros.runtime.perception import SOURCE_KINDS
from centralnet_ros.training.experiment import load_experiment
from centralnet_ros.training.train_cli import DEFAULT_PRESETS

REPO = Path(__file__).resolve().parents[1]


def test_tasks_are_the_same_everywhere():
    shipped = {read_manifest(p.parent).task: p.parent.name for p in (REPO / 'models').glob('*/manifest.yaml')}
    assert set(node_params.TASKS) == set(DEFAULT_PRESETS) == set(shipped)
    assert all(folder == task for task, folder in shipped.items())
    for task, preset in DEFAULT_PRESETS.items():
        assert load_experiment(preset).bundle.task == task, preset


def test_every_registered_fusion_method_builds_its_own_class():
    methods = fusion_methods()
    assert len(methods) == len(set(methods)) >= 6
    for cls in FusionModel.__subclasses__():
        if cls is Ensemble:                 # not a method: copies of a registered one (FusionConfig.members)
            continue
        assert cls.method in methods, cls


def test_the_runtime_feeds_every_manifest_source():
    assert set(SOURCE_KINDS) == set(SOURCES)
