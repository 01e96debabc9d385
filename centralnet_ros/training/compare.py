"""
``centralnet compare``: train CentralNet and the baselines over N seeds and report.

Runs the preset's variants x folds x methods x seeds through :mod:`centralnet_ros.training.sweep`.
Writes into ``--out``: ``config.yaml`` (the resolved experiment), ``runs.json`` (every
run, rewritten atomically after each so an interrupted comparison can ``--resume``),
``results.md`` (mean +- std per method, best unimodal, two-sample z-test of CentralNet
against every other method, the fusion-weight table, machine and command) and PNG plots.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
import sys
import time

from centralnet_ros import paths
from centralnet_ros.config import atomic_write_text, ConfigError
from centralnet_ros.evaluation.statistics import mean_std, two_sample_z_test
from centralnet_ros.machine import machine_line
from centralnet_ros.training.experiment import available_presets, ExperimentConfig, load_experiment, parse_overrides
import numpy as np

CENTRAL = 'centralnet'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--dataset', default='avmnist',
                        help='experiment preset named after its dataset (config/experiments/<name>.yaml); '
                             f'available: {", ".join(available_presets()) or "none"}')
    parser.add_argument('--preset', default=None, help='a preset name or YAML path (overrides --dataset)')
    parser.add_argument('--quick', action='store_true',
                        help="apply the preset's quick: overrides (fewer samples, epochs and seeds) "
                             'for a run of a few minutes')
    parser.add_argument('--methods', default=None,
                        help='comma-separated subset of the preset methods, e.g. centralnet,late')
    parser.add_argument('--seeds', type=int, default=None, help='number of seeds per method (preset default)')
    parser.add_argument('--variants', default=None,
                        help="comma-separated subset of the preset's variants (default: all it declares)")
    parser.add_argument('--folds', default=None,
                        help="comma-separated fold indices of the preset's folds, e.g. 0,2 (default: all)")
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a preset value, e.g. --set train.epochs=5 (repeatable)')
    parser.add_argument('--out', default=None, help='output folder (default: runs/compare-<preset>[-quick])')
    parser.add_argument('--data-root', default=None,
                        help=f'folder holding the datasets (default: {paths.DATA_ROOT_DEFAULT})')
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:N (preset default: train.device)')
    parser.add_argument('--threads', type=int, default=0,
                        help="torch threads per run (0: 1 when --jobs > 1, else torch's default)")
    parser.add_argument('--vmap', action='store_true',
                        help="train each method's seeds together as one vmapped ensemble in this process "
                             '(torch.func); pays for small fully connected models and on GPU, see '
                             'benchmarks/results/ensemble.md')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    parser.add_argument('--render-only', action='store_true',
                        help='train nothing: write results.md and the plots from the runs already in --out '
                             '(a sweep interrupted or still running elsewhere); says how many runs are missing')
    from centralnet_ros.training import sweep
    sweep.add_arguments(parser, jobs=0)


def run(args: argparse.Namespace) -> int:
    try:
        overrides = parse_overrides(args.overrides)
        if args.seeds is not None:
            overrides['seeds'] = args.seeds
        if args.device:
            overrides['train.device'] = args.device
        if args.no_progress:
            overrides['train.progress'] = False
        if args.threads:
            overrides['train.num_threads'] = args.threads
        cfg = load_experiment(args.preset or args.dataset, quick=args.quick, overrides=overrides)
    except (ConfigError, ValueError) as exc:
        print(f'centralnet compare: {exc}', file=sys.stderr)
        return 2
    methods = None
    if args.methods:
        methods = [m.strip() for m in args.methods.split(',') if m.strip()]
        unknown = [m for m in methods if m not in cfg.methods]
        if unknown:
            print(f'centralnet compare: methods {unknown} are not in the preset ({cfg.methods})', file=sys.stderr)
            return 2
    variants = [v.strip() for v in args.variants.split(',') if v.strip()] if args.variants else None
    try:
        folds = [int(f) for f in args.folds.split(',') if f.strip()] if args.folds else None
        from centralnet_ros.training.sweep import plan_runs
        if not plan_runs(cfg, methods=methods, variants=variants, folds=folds):
            raise ConfigError('nothing to run: no fold, seed or method left after --folds/--seeds/--methods')
    except (ConfigError, ValueError) as exc:
        print(f'centralnet compare: {exc}', file=sys.stderr)
        return 2
    out = Path(args.out or f'runs/compare-{cfg.name}{"-quick" if args.quick else ""}')
    command = getattr(args, 'command_line', '')
    if args.render_only:
        return render_only(cfg, methods, variants, folds, out)
    from centralnet_ros.training.sweep import SweepError
    try:
        report = compare(cfg, methods, out, data_root=paths.data_root(args.data_root), resume=args.resume,
                         command=command, jobs=args.jobs or (os.cpu_count() or 1),
                         backend='vmap' if args.vmap else 'ray' if args.ray else 'local',
                         ray_address=args.ray or 'local', progress=not args.no_progress, variants=variants,
                         folds=folds)
    except (FileNotFoundError, SweepError) as exc:
        print(f'centralnet compare: {exc}', file=sys.stderr)
        return 1
    print(report)
    print(f'\nwrote {out}/results.md, runs.json, config.yaml and plots')
    failed = json.loads((out / 'runs.json').read_text()).get('failed', [])
    if failed:
        print(f'centralnet compare: {len(failed)} run(s) failed (listed in {out}/runs.json); '
              'run again with --resume to retry them', file=sys.stderr)
        return 1
    return 0


def render_only(cfg: ExperimentConfig, methods: list[str] | None, variants: list[str] | None,
                folds: list[int] | None, out: Path) -> int:
    """``--render-only``: render ``out/results.md`` and the plots from ``out/runs.json`` as it is now."""
    from centralnet_ros.training import sweep
    runs_path = out / 'runs.json'
    if not runs_path.exists():
        print(f'centralnet compare: --render-only needs the runs.json of a sweep in {out}, found none',
              file=sys.stderr)
        return 1
    stored = json.loads(runs_path.read_text())
    plan = sweep.plan_runs(cfg, methods=methods, variants=variants, folds=folds)
    wanted = {spec.key for spec in plan}
    runs = [r for r in stored.get('runs', []) if sweep.RunSpec.of(r).key in wanted]
    if not runs:
        print(f'centralnet compare: {runs_path} holds none of the {len(plan)} runs asked for (same preset, '
              '--quick, --seeds and --set as the sweep?)', file=sys.stderr)
        return 1
    report = render_report(cfg, runs, methods or cfg.methods, command=stored.get('command', ''),
                           data_info=stored.get('data'), jobs=0)
    if len(runs) < len(plan):
        report = report.replace('\n\n', f'\n\n**Partial sweep: {len(runs)} of the {len(plan)} planned runs '
                                f'finished** (rendered with --render-only).\n\n', 1)
    atomic_write_text(out / 'results.md', report)
    _plots(cfg, [r for r in runs if 'variant' not in r], methods or cfg.methods, out)
    print(report)
    print(f'\nwrote {out}/results.md and plots from {len(runs)} of {len(plan)} runs')
    return 0


def compare(cfg: ExperimentConfig, methods: list[str] | None, out: Path, *, data_root: Path, resume: bool = False,
            command: str = '', jobs: int = 1, backend: str = 'local', ray_address: str = 'local',
            progress: bool = True, variants: list[str] | None = None, folds: list[int] | None = None) -> str:
    """
    Train every run of ``cfg`` (variants x folds x methods x seeds), ``jobs`` at a time, and report into ``out``.

    ``methods``, ``variants`` and ``folds`` pick subsets (``None``: all the preset declares);
    ``backend`` is a :mod:`centralnet_ros.training.sweep` backend (``local`` or ``ray``).
    """
    from centralnet_ros.training import sweep
    from centralnet_ros.training.datasets import load_experiment_data

    plan = sweep.plan_runs(cfg, methods=methods, variants=variants, folds=folds)
    first = cfg.resolve(plan[0].variant, plan[0].fold) if plan else cfg
    t0 = time.perf_counter()
    data = load_experiment_data(first.dataset, first.dataset_options, data_root)   # builds any cache once
    print(f'{cfg.dataset}: train {len(data.train)}, val {len(data.val)}, test {len(data.test)} '
          f'(loaded in {time.perf_counter() - t0:.1f} s)', file=sys.stderr)
    info = data.info
    if cfg.folds or cfg.variants:       # every fold / variant has its own data, loaded where it runs
        data = None
        info = {'folds': f'{cfg.folds.scheme}, {len(cfg.folds.values)} folds'} if cfg.folds else {}
        info.update({'variants': ', '.join(cfg.variants)} if cfg.variants else {})
    runs, _ = sweep.run_sweep(cfg, plan, out, resume=resume, command=command, data=data, data_root=data_root,
                              backend=backend, jobs=jobs, ray_address=ray_address, info=info,
                              progress=progress and cfg.train.progress)
    report = render_report(cfg, runs, methods or cfg.methods, command=command, data_info=info, jobs=jobs)
    atomic_write_text(out / 'results.md', report)
    _plots(cfg, [r for r in runs if 'variant' not in r], methods or cfg.methods, out)
    return report


def run_one(cfg: ExperimentConfig, data, method: str, seed: int, desc: str = '') -> dict:
    """Train one (method, seed) and return its JSON record."""
    from centralnet_ros.fusion import build_model
    from centralnet_ros.torch_utils import seed_everything
    from centralnet_ros.training.datasets import make_augmentation
    from centralnet_ros.training.trainer import train

    seed_everything(seed)                                  # the initial weights depend on the seed alone
    model = build_model(cfg.fusion_config(method))
    result = train(model, data.train, data.val, cfg.train, seed=seed, test_split=data.test, task=cfg.task,
                   augment=make_augmentation(cfg.augment, cfg.augment_options), desc=desc or f'{method} seed {seed}',
                   input_names=data.input_names)
    return _record(method, seed, result, model)


def run_ensemble(cfg: ExperimentConfig, data, method: str, seeds: list[int], desc: str = '') -> list[dict]:
    """Train ``method`` for every seed at once as a vmapped ensemble; one JSON record per seed (``vmapped: True``)."""
    from centralnet_ros.fusion import build_model
    from centralnet_ros.torch_utils import seed_everything
    from centralnet_ros.training.datasets import make_augmentation
    from centralnet_ros.training.ensemble import train_ensemble

    models = []
    for seed in seeds:
        seed_everything(seed)                              # each member starts where run_one's model would
        models.append(build_model(cfg.fusion_config(method)))
    results = train_ensemble(models, seeds, data.train, data.val, cfg.train, test_split=data.test, task=cfg.task,
                             augment=make_augmentation(cfg.augment, cfg.augment_options),
                             desc=desc or f'{method} x{len(seeds)} seeds')
    return [_record(method, seed, result, model) | {'vmapped': True}
            for seed, result, model in zip(seeds, results, models)]


def _record(method: str, seed: int, result, model) -> dict:
    rec = {'method': method, 'seed': seed, 'test': result.test_metric, 'val': result.val_metric,
           'best_epoch': result.best_epoch, 'epochs_run': result.epochs_run, 'wall_time_s': result.wall_time_s,
           'parameters': sum(p.numel() for p in model.parameters()), 'history': result.history}
    if model.fusion_weights() is not None:
        rec['fusion_weights'] = model.fusion_weights()
    return rec


def summarize_runs(runs: list[dict], methods: list[str]) -> dict[str, dict]:
    """
    Return per method the test metric per seed (the mean over the folds when there are folds), its mean and std.

    ``n`` counts seeds, ``folds`` the folds behind each seed's figure (1 without folds).
    """
    table = {}
    for m in methods:
        per_seed: dict = {}
        for r in runs:
            if r['method'] == m:
                per_seed.setdefault(r['seed'], []).append(r['test'])
        if not per_seed:
            continue
        tests = [float(np.mean(v)) for v in per_seed.values()]
        mean, std = mean_std(tests)
        wall = [r['wall_time_s'] for r in runs if r['method'] == m]
        table[m] = {'tests': tests, 'mean': mean, 'std': std, 'n': len(tests),
                    'folds': min(len(v) for v in per_seed.values()),
                    'wall_mean_s': float(np.mean(wall)), 'wall_total_s': float(np.sum(wall)),
                    'parameters': next(r['parameters'] for r in runs if r['method'] == m)}
    return table


def render_report(cfg: ExperimentConfig, runs: list[dict], methods: list[str], *, command: str = '',
                  data_info: dict | None = None, jobs: int = 1) -> str:
    metric = cfg.train.metric
    lines = [f'# {cfg.name}: CentralNet against its baselines', '']
    if cfg.description:
        lines += [cfg.description.strip(), '']
    lines += [f'Test {metric} over seeds (the weights of the best validation epoch'
              + (f'; per seed the mean over the {cfg.folds.scheme} folds' if cfg.folds else '')
              + '). The z-test is the two-sample z-test of CentralNet against each method over the seeds '
              '(two-sided p).', '']
    variants = list(dict.fromkeys(r['variant'] for r in runs if 'variant' in r))
    for variant in variants or [None]:
        vruns = [r for r in runs if r.get('variant') == variant]
        vcfg = cfg.resolve(variant)
        if variant is not None:
            lines += [f'## Variant {variant}', '']
        lines += _results_section(vcfg, vruns, [m for m in methods if m in vcfg.methods] or vcfg.methods)
    total_wall = sum(r['wall_time_s'] for r in runs)
    lines += ['', '## How this was produced', '', f'- command: `{command}`' if command else '- command: (library call)',
              f'- machine: {machine_line()}',
              f'- training time: {total_wall / 60:.1f} min summed over {len(runs)} runs '
              + (f'({jobs} run(s) in parallel, ' if jobs else '(')
              + f'{cfg.train.num_threads or (1 if jobs > 1 else "default")} torch thread(s) each); '
              'wall time per run above is measured inside each run',
              f'- training: {_train_line(cfg)}']
    if data_info:
        shown = {k: v for k, v in data_info.items() if isinstance(v, (int, float, str, bool))}
        if shown:
            lines.append('- data: ' + ', '.join(f'{k}={v}' for k, v in shown.items()))
    return '\n'.join(lines) + '\n'


def _results_section(cfg: ExperimentConfig, runs: list[dict], methods: list[str]) -> list[str]:
    """Return the method table, best unimodal, CentralNet's lead and its fusion weights of one variant's runs."""
    table = summarize_runs(runs, methods)
    metric = cfg.train.metric
    lines = [f'| method | test {metric} (%) | runs | parameters | wall time per run (s) | z vs CentralNet | p |',
             '|---|---|---|---|---|---|---|']
    central = table.get(CENTRAL)
    for m, row in table.items():
        z_cell = p_cell = ''
        if central and m != CENTRAL and central['n'] > 1 and row['n'] > 1:
            z, p = two_sample_z_test(central['tests'], row['tests'])
            z_cell, p_cell = f'{z:+.2f}', (f'{p:.2g}' + (' *' if p < 0.05 else ''))
        lines.append(f'| {m} | {row["mean"] * 100:.2f} ± {row["std"] * 100:.2f} | {row["n"]} | '
                     f'{row["parameters"]:,} | {row["wall_mean_s"]:.1f} | {z_cell} | {p_cell} |')
    uni = {m: r for m, r in table.items() if m.startswith('unimodal:')}
    if uni:
        best = max(uni, key=lambda m: uni[m]['mean'])
        lines += ['', f'Best unimodal: **{best}** {uni[best]["mean"] * 100:.2f} %.']
    if central:
        others = [m for m in table if m != CENTRAL and not m.startswith(('unimodal:', CENTRAL + '+'))]
        ahead = [m for m in others if central['mean'] > table[m]['mean']]
        sig = [m for m in ahead if central['n'] > 1 and table[m]['n'] > 1
               and two_sample_z_test(central['tests'], table[m]['tests'])[1] < 0.05]
        lines.append(f'CentralNet is ahead of {len(ahead)}/{len(others)} fusion baselines '
                     f'({", ".join(ahead) or "none"}); significantly (p < 0.05) ahead of '
                     f'{", ".join(sig) or "none"}.')
    weights = [r['fusion_weights'] for r in runs if r['method'] == CENTRAL and 'fusion_weights' in r]
    if weights:
        keys = list(weights[0]['levels'][-1]['share'])
        lines += ['', '## CentralNet fusion weights', '',
                  'Share of each weight in its level, |w| / sum |w|, mean ± std over seeds '
                  '(level 1 fuses the modalities only; "output" weighs the predictions).', '',
                  '| level | ' + ' | '.join(keys) + ' |', '|---|' + '---|' * len(keys)]
        for i, level in enumerate(weights[0]['levels']):
            cells = []
            for k in keys:
                v = [w['levels'][i]['share'][k] for w in weights if k in w['levels'][i]['share']]
                cells.append(f'{np.mean(v) * 100:.1f} ± {np.std(v) * 100:.1f}' if v else '–')
            lines.append(f'| {level["level"]} | ' + ' | '.join(cells) + ' |')
    return lines


def _train_line(cfg: ExperimentConfig) -> str:
    t = dataclasses.asdict(cfg.train)
    keys = ['epochs', 'batch_size', 'optimizer', 'lr', 'weight_decay', 'schedule', 'patience', 'device']
    return ', '.join(f'{k}={t[k]}' for k in keys)


def _plots(cfg: ExperimentConfig, runs: list[dict], methods: list[str], out: Path) -> None:
    from centralnet_ros.evaluation import plots
    table = summarize_runs(runs, methods)
    if table:
        plots.plot_accuracy({m: r['tests'] for m, r in table.items()}, out / 'accuracy.png', cfg.train.metric)
    central = [r for r in runs if r['method'] == CENTRAL and 'fusion_weights' in r]
    if central:
        plots.plot_fusion_weights([r['fusion_weights'] for r in central], out / 'fusion_weights.png',
                                  title=f'{cfg.name}: CentralNet fusion weights')
        plots.plot_fusion_weight_evolution(
            central[0]['history'], out / 'fusion_weights_training.png',
            title=f'{cfg.name}: fusion weights during training (seed {central[0]["seed"]})')
