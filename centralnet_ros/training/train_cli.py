"""
``centralnet train --task TASK [--preset NAME]``: train one model and write a bundle.

The preset (``config/experiments/<name>.yaml``) gives the data, the encoders, the
training settings and a ``bundle:`` section saying how the runtime makes each input.
"""
from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path
import sys

from centralnet_ros import paths
from centralnet_ros.config import ConfigError

DEFAULT_PRESETS = {'gesture': 'msrc12_gesture_refit', 'speech': 'avletters_speech', 'emotion': 'emodb_emotion'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--task', required=True, choices=sorted(DEFAULT_PRESETS),
                        help='which task model to train')
    parser.add_argument('--preset', default=None,
                        help="experiment preset name or YAML path (default: the task's: "
                             + ', '.join(f'{k}={v}' for k, v in DEFAULT_PRESETS.items()) + ')')
    parser.add_argument('--out', default=None, help='bundle folder to write (default: models/<task>)')
    parser.add_argument('--method', default=None, help="fusion method to ship (default: the preset's bundle.method)")
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--quick', action='store_true', help="apply the preset's quick: overrides")
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a preset value, e.g. --set train.epochs=5 (repeatable)')
    parser.add_argument('--data-root', default=None,
                        help=f'folder holding the datasets (default: {paths.DATA_ROOT_DEFAULT})')
    parser.add_argument('--device', default=None, help='cpu, cuda or cuda:N')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    from centralnet_ros.training.experiment import load_experiment, parse_overrides
    try:
        overrides = parse_overrides(args.overrides)
        if args.device:
            overrides['train.device'] = args.device
        if args.no_progress:
            overrides['train.progress'] = False
        cfg = load_experiment(args.preset or DEFAULT_PRESETS[args.task], quick=args.quick, overrides=overrides)
        if cfg.bundle is None:
            raise ConfigError(f'preset {cfg.name} has no bundle: section, so it cannot produce a model bundle')
        if cfg.bundle.task != args.task:
            raise ConfigError(f'preset {cfg.name} trains the {cfg.bundle.task} task, not {args.task}')
    except (ConfigError, ValueError) as exc:
        print(f'centralnet train: {exc}', file=sys.stderr)
        return 2
    out = Path(args.out or paths.share_dir() / 'models' / args.task)
    command = getattr(args, 'command_line', '')
    try:
        summary = train_bundle(cfg, out, method=args.method, seed=args.seed,
                               data_root=paths.data_root(args.data_root), command=command)
    except FileNotFoundError as exc:
        print(f'centralnet train: {exc}', file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f'centralnet train: {exc}', file=sys.stderr)
        return 2
    print(summary)
    return 0


def train_bundle(cfg, out: Path, *, method: str | None = None, seed: int = 0, data_root: Path,
                 command: str = '') -> str:
    from centralnet_ros.bundle import FORMAT_VERSION, Manifest, ModalitySpec, save_bundle
    from centralnet_ros.config import from_dict
    from centralnet_ros.data.registry import training_terms
    from centralnet_ros.fusion import build_model
    from centralnet_ros.torch_utils import seed_everything
    from centralnet_ros.training.datasets import check_bundle_inputs, check_refit, load_experiment_data, \
        make_augmentation
    from centralnet_ros.machine import machine_description
    from centralnet_ros.training.trainer import train

    method = method or cfg.bundle.method
    data = load_experiment_data(cfg.dataset, cfg.dataset_options, data_root)
    check_bundle_inputs(cfg, data)                         # before training: the bundle must make these arrays
    check_refit(cfg, data)                                 # ... and a refit must not choose on what it trains on
    fusion_cfg = cfg.fusion_config(method)
    seed_everything(seed)                                  # the initial weights depend on the seed alone
    model = build_model(fusion_cfg)
    result = train(model, data.train, data.val, cfg.train, seed=seed, test_split=data.test, task=cfg.task,
                   augment=make_augmentation(cfg.augment, cfg.augment_options), desc=f'{cfg.bundle.task}: {method}',
                   input_names=data.input_names)
    calibration = {}
    if data.info.get('calibrate_bias_class') is not None:   # e.g. MSRC-12 calibrate_none_bias: on validation only
        from centralnet_ros.training.gesture import calibrate_class_bias
        from centralnet_ros.evaluation.metrics import compute_metric
        from centralnet_ros.training.trainer import predict
        cls = int(data.info['calibrate_bias_class'])
        calibration = {'class': data.label_names[cls], **calibrate_class_bias(model, data.val, cls)}
        for split, name in ((data.val, 'val_metric'), (data.test, 'test_metric')):
            setattr(result, name, float(compute_metric(cfg.train.metric, predict(model, split), split.labels,
                                                       len(data.label_names))))
    modalities = {}
    for name, enc in cfg.modalities.items():
        spec = dict(cfg.bundle.modalities.get(name, {}))
        spec['input_shape'] = list(enc.input_shape)
        if name in data.normalisation:
            spec['normalisation'] = data.normalisation[name]
        modalities[name] = from_dict(ModalitySpec, spec, _where=f'bundle.modalities.{name}')
    machine = machine_description()
    manifest = Manifest(
        format_version=FORMAT_VERSION, task=cfg.bundle.task, labels=list(data.label_names), model=fusion_cfg,
        modalities=modalities,
        metrics={f'test_{cfg.train.metric}': float(result.test_metric),
                 # (a model trained on its validation persons has no held-out validation figure)
                 **({} if data.info.get('train_with_val') else {f'val_{cfg.train.metric}': result.val_metric})},
        evaluation={'dataset': cfg.dataset, 'protocol': data.info.get('protocol', 'held-out test split'),
                    'train_samples': len(data.train), 'val_samples': len(data.val), 'test_samples': len(data.test),
                    **{k: v for k, v in data.info.items() if isinstance(v, (str, int, float, bool))}},
        data_terms=training_terms(data.info.get('training_datasets', cfg.dataset)),
        training={'preset': cfg.name, 'method': method, 'seed': seed, 'epochs_run': result.epochs_run,
                  'best_epoch': result.best_epoch, 'wall_time_s': round(result.wall_time_s, 1),
                  **({'class_bias': calibration} if calibration else {}),
                  **(_lda_record(cfg.train) if cfg.train.solver == 'shrinkage_lda' else {}),
                  'command': command, 'date': _dt.date.today().isoformat(),
                  'machine': f'{machine.get("cpu_model", machine["processor"])} x{machine["cpu_count"]}'},
        label_map=dict(cfg.bundle.label_map), notes=cfg.bundle.notes.strip(), licence=_licence(modalities),
        decision=dict(cfg.bundle.decision))
    save_bundle(out, model, manifest)
    val = 'val trained on' if data.info.get('train_with_val') else f'val {result.val_metric * 100:.2f} %'
    return (f'{cfg.bundle.task}: {method} test {cfg.train.metric} {result.test_metric * 100:.2f} % '
            f'({val}, {result.epochs_run} epochs, {result.wall_time_s:.0f} s) '
            f'-> bundle {out}')


def _lda_record(train) -> dict:
    """Describe a closed-form LDA for the manifest: its shrinkage, or the ensemble's members."""
    if train.lda_shrinkages or train.lda_drop_prefixes:
        return {'solver': train.solver, 'lda_shrinkages': list(train.lda_shrinkages or [train.shrinkage]),
                'lda_drop_prefixes': [list(g) for g in train.lda_drop_prefixes]}
    return {'solver': train.solver, 'shrinkage': train.shrinkage}


def _licence(modalities: dict) -> str:
    """Extra licence terms of the pipelines a bundle uses (openSMILE features bind the model)."""
    if any(spec.pipeline == 'opensmile_functionals' for spec in modalities.values()):
        from centralnet_ros.features.opensmile import OPENSMILE_LICENCE
        return OPENSMILE_LICENCE
    return ''
