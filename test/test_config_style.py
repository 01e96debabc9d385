"""One config style: command-line flags only override dataclass fields, whose defaults are declared once."""
from __future__ import annotations

import argparse

from centralnet_ros import finetune_cli
from centralnet_ros.config import ConfigError
from centralnet_ros.training.finetune import FinetuneConfig
import pytest


def _parse(*extra: str):
    parser = argparse.ArgumentParser()
    finetune_cli.add_arguments(parser)
    return finetune_cli.finetune_config(parser.parse_args(['--bundle', 'b', '--bags', 'x', *extra]))


def test_finetune_flags_default_to_the_dataclass_and_set_reaches_any_field():
    plain, default = _parse('--no-progress'), FinetuneConfig()
    assert plain.train.epochs == default.train.epochs and plain.train.lr == default.train.lr
    assert plain.mode == default.mode and plain.seed == default.seed and plain.train.schedule == default.train.schedule
    tuned = _parse('--epochs', '7', '--mode', 'new_labels', '--freeze-encoders', '--set', 'train.weight_decay=0.01',
                   '--set', 'train.epochs=9')
    assert tuned.train.weight_decay == 0.01 and tuned.train.epochs == 9 and tuned.freeze_encoders
    with pytest.raises(ConfigError, match='train.nope'):
        _parse('--set', 'train.nope=1')
