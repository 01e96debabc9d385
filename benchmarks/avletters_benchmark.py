"""
AVLetters: CentralNet and the baselines over seeds, for both protocols of issue 3.

* speaker-dependent: the report's random 600/180 split (52 validation samples carved
  from the 600), every method of ``config/experiments/avletters.yaml`` over ``--seeds``
  training seeds (default 3);
* leave-one-speaker-out: 10 folds (one per speaker; the next speaker is the validation
  set), one training seed per fold (seed = fold), for the two single modalities, late
  fusion and CentralNet by default (``--loso-methods`` names others: all seven methods
  over 10 folds do not fit the ~25 min budget of this shared 2-core machine).

Each run is the preset's network and training settings through the project's trainer
(``centralnet_ros.training.trainer.train``, the weights of the best validation epoch
evaluated on the test part), exactly what ``centralnet compare --dataset avletters``
runs; this script adds the LOSO folds, two worker processes (one torch thread each)
and the comparison with the published figures.

Usage::

    python benchmarks/avletters_benchmark.py [--seeds 3] [--folds 0-9] [--workers 2]
        [--augment lip_video] [--set train.epochs=20] [--out benchmarks/results/avletters]

Writes ``<out>.json`` (every run) after each finished run and ``<out>.md`` at the end,
atomically, and prints the tables.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing as mp
from pathlib import Path
import sys
import time

from centralnet_ros import paths
from centralnet_ros.config import atomic_write_text
from centralnet_ros.evaluation.statistics import mean_std, two_sample_z_test
from centralnet_ros.machine import command_line, machine_description
from centralnet_ros.training.experiment import experiment_dict, load_experiment, parse_overrides
import numpy as np

REFERENCE = {   # published figures, for orientation (speaker-dependent unless noted)
    'unimodal:mfcc': ('77.84', 'Hsieh 2017 internship report, audio MFCC CNN, speaker-dependent 600/180'),
    'unimodal:lip_video': ('54.32 (report) / ~64 (literature)',
                           'report: lip 3-D CNN, speaker-dependent 600/180; literature: video-only '
                           'AVLetters ~64 % (e.g. Ngiam et al. 2011, 64.4 %; their protocol differs)'),
}
LOSO_METHODS = ('unimodal:mfcc', 'unimodal:lip_video', 'late', 'centralnet')
COST = {'unimodal:mfcc': 1, 'unimodal:lip_video': 3, 'early': 2, 'late': 4, 'gmu': 4, 'moddrop': 4, 'centralnet': 4}

_STATE: dict = {}


def _init_worker(preset: str, overrides: dict, data_root: str, augment: str | None) -> None:
    import torch
    torch.set_num_threads(1)
    _STATE.update(preset=preset, overrides=overrides, data_root=Path(data_root), augment=augment)


def _run_job(job: dict) -> dict:
    """One (protocol, fold, method, seed) training run in a worker process."""
    import torch
    from centralnet_ros.fusion import build_model
    from centralnet_ros.training.datasets import load_experiment_data
    from centralnet_ros.training.speech import make_augmentation
    from centralnet_ros.training.trainer import train
    torch.set_num_threads(1)
    overrides = dict(_STATE['overrides'])
    overrides['dataset_options.protocol'] = job['protocol']
    if job['protocol'] == 'loso':
        overrides['dataset_options.fold'] = job['fold']
    overrides['train.progress'] = False
    overrides['train.num_threads'] = 1
    cfg = load_experiment(_STATE['preset'], overrides=overrides)
    data = load_experiment_data(cfg.dataset, cfg.dataset_options, _STATE['data_root'])   # memoised arrays
    model = build_model(cfg.fusion_config(job['method']))
    augment = make_augmentation(_STATE['augment']) if _STATE['augment'] else None
    result = train(model, data.train, data.val, cfg.train, seed=job['seed'], test_split=data.test,
                   augment=augment, task=cfg.task)
    record = {**job, 'test': float(result.test_metric), 'val': float(result.val_metric),
              'best_epoch': result.best_epoch, 'epochs_run': result.epochs_run,
              'wall_time_s': round(result.wall_time_s, 2),
              'parameters': int(sum(p.numel() for p in model.parameters())),
              'test_speaker': data.info.get('test_speaker')}
    weights = model.fusion_weights()
    if weights is not None:
        record['fusion_weights'] = weights
    return record


def _parse_folds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(','):
        part = part.strip()
        if not part:
            continue
        if '-' in part:
            a, b = part.split('-')
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def _pct(v: float) -> str:
    return f'{v * 100:.2f}'


def render(payload: dict) -> str:
    runs, methods = payload['runs'], payload['methods']
    lines = ['# AVLetters: CentralNet against its baselines and the published figures', '',
             'Test accuracy (%) of the weights of the best validation epoch; 26 classes (chance 3.85 %). '
             'Networks, training and data: `config/experiments/avletters.yaml`; protocols: '
             '`centralnet_ros/training/speech.py`.', '']
    sd = [r for r in runs if r['protocol'] == 'speaker_dependent']
    lo = [r for r in runs if r['protocol'] == 'loso']
    if sd:
        lines += ["## Speaker-dependent (the report's random 600 / 180 split)", '',
                  f'{len({r["seed"] for r in sd})} training seeds on the split of seed '
                  f'{payload["split_seed"]} (548 train, 52 validation carved from the 600, 180 test). '
                  'z and p: two-sample z-test of CentralNet against the method over the seeds.', '',
                  '| method | test accuracy (%) | runs | per seed | parameters | wall time per run (s) '
                  '| z vs CentralNet | p | published |', '|---|---|---|---|---|---|---|---|---|']
        central = [r['test'] for r in sd if r['method'] == 'centralnet']
        for m in methods:
            rs = [r for r in sd if r['method'] == m]
            if not rs:
                continue
            tests = [r['test'] for r in rs]
            mean, std = mean_std(tests)
            z_cell = p_cell = ''
            if m != 'centralnet' and len(central) > 1 and len(tests) > 1:
                z, p = two_sample_z_test(central, tests)
                z_cell, p_cell = f'{z:+.2f}', f'{p:.2g}' + (' *' if p < 0.05 else '')
            lines.append(f'| {m} | {_pct(mean)} ± {_pct(std)} | {len(rs)} | '
                         f'{", ".join(_pct(t) for t in tests)} | {rs[0]["parameters"]:,} | '
                         f'{np.mean([r["wall_time_s"] for r in rs]):.0f} | {z_cell} | {p_cell} | '
                         f'{REFERENCE.get(m, ("",))[0]} |')
        lines += ['', _fused_vs_best(sd, methods, paired=False), '']
    if lo:
        folds = sorted({r['fold'] for r in lo})
        speakers = {r['fold']: r.get('test_speaker') or str(r['fold']) for r in lo}
        lines += ['## Leave-one-speaker-out (speaker-independent)', '',
                  f'{len(folds)} folds, one training seed per fold (seed = fold); the validation set is the '
                  'next speaker in name order, so model selection never sees the test speaker. '
                  'Mean ± std over folds.', '',
                  '| method | test accuracy (%) | folds | worst .. best fold | wall time per run (s) |',
                  '|---|---|---|---|---|']
        for m in methods:
            rs = [r for r in lo if r['method'] == m]
            if not rs:
                continue
            tests = [r['test'] for r in rs]
            mean, std = mean_std(tests)
            lines.append(f'| {m} | {_pct(mean)} ± {_pct(std)} | {len(rs)} | {_pct(min(tests))} .. '
                         f'{_pct(max(tests))} | {np.mean([r["wall_time_s"] for r in rs]):.0f} |')
        lines += ['', _fused_vs_best(lo, methods, paired=True), '', '### Per fold (test speaker)', '',
                  '| method | ' + ' | '.join(speakers[f] for f in folds) + ' |', '|---|' + '---|' * len(folds)]
        for m in methods:
            cells = []
            for f in folds:
                v = [r['test'] for r in lo if r['method'] == m and r['fold'] == f]
                cells.append(_pct(v[0]) if v else '–')
            if any(c != '–' for c in cells):
                lines.append(f'| {m} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    weights = [r['fusion_weights'] for r in runs if r['method'] == 'centralnet' and 'fusion_weights' in r]
    if weights:
        keys = list(weights[0]['levels'][-1]['share'])
        lines += ['## CentralNet fusion weights', '',
                  'Share of each learned weight in its level, |w| / sum |w|, mean over all CentralNet runs '
                  '(both protocols; level 1 fuses the modalities only, "output" weighs the three predictions).',
                  '', '| level | ' + ' | '.join(keys) + ' |', '|---|' + '---|' * len(keys)]
        for i, level in enumerate(weights[0]['levels']):
            cells = []
            for k in keys:
                v = [w['levels'][i]['share'][k] for w in weights if k in w['levels'][i]['share']]
                cells.append(f'{np.mean(v) * 100:.1f}' if v else '–')
            lines.append(f'| {level["level"]} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    lines += ['## Published figures', '']
    for m, (fig, where) in REFERENCE.items():
        lines.append(f'- {m}: {fig} % ({where})')
    lines += ['- no fused AVLetters figure is given in the report for this comparison.', '']
    m = payload['machine']
    total = sum(r['wall_time_s'] for r in runs)
    lines += ['## How this was produced', '',
              f'- command: `{payload["command"]}`',
              f'- machine: {m.get("cpu_model", m.get("processor"))}, {m["cpu_count"]} cores (shared with other '
              f'jobs), torch {m["torch"]}, {payload["workers"]} worker processes x 1 torch thread, {m["platform"]}',
              f'- wall time of the whole benchmark: {payload["wall_time_s"] / 60:.1f} min '
              f'(sum of the training runs: {total / 60:.1f} min over {len(runs)} runs)',
              f'- training: {payload["train"]}',
              f'- augmentation: {payload["augment"] or "none"}',
              f'- date: {payload["date"]}', '']
    return '\n'.join(lines)


def _fused_vs_best(runs: list[dict], methods: list[str], *, paired: bool) -> str:
    def mean_of(m):
        v = [r['test'] for r in runs if r['method'] == m]
        return float(np.mean(v)) if v else float('nan')
    uni = [m for m in methods if m.startswith('unimodal:') and any(r['method'] == m for r in runs)]
    fused = [m for m in methods if not m.startswith('unimodal:') and any(r['method'] == m for r in runs)]
    if not uni or not fused:
        return ''
    best_u = max(uni, key=mean_of)
    best_f = max(fused, key=mean_of)
    text = (f'Best single modality: **{best_u}** {_pct(mean_of(best_u))} %; best fusion: **{best_f}** '
            f'{_pct(mean_of(best_f))} % ({(mean_of(best_f) - mean_of(best_u)) * 100:+.2f} points); '
            f'CentralNet {_pct(mean_of("centralnet"))} % '
            f'({(mean_of("centralnet") - mean_of(best_u)) * 100:+.2f} points over {best_u}).')
    if paired:
        from scipy import stats
        key = 'fold'
        a = {r[key]: r['test'] for r in runs if r['method'] == 'centralnet'}
        b = {r[key]: r['test'] for r in runs if r['method'] == best_u}
        common = sorted(set(a) & set(b))
        if len(common) >= 3:
            d = np.array([a[k] - b[k] for k in common])
            t = stats.ttest_rel([a[k] for k in common], [b[k] for k in common])
            text += (f' Per fold, CentralNet beats {best_u} on {int((d > 0).sum())}/{len(common)} speakers '
                     f'(paired t-test p = {t.pvalue:.2g}).')
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--preset', default='avletters')
    parser.add_argument('--seeds', type=int, default=3, help='training seeds, speaker-dependent protocol')
    parser.add_argument('--folds', default='0-9', help='LOSO folds, e.g. 0-9 or 0,3,5 ("" for none)')
    parser.add_argument('--methods', default=None, help='comma-separated subset of the preset methods')
    parser.add_argument('--loso-methods', default=','.join(LOSO_METHODS),
                        help='methods for LOSO ("all": every method of --methods)')
    parser.add_argument('--workers', type=int, default=2, help='parallel processes (1 torch thread each)')
    parser.add_argument('--augment', default=None, help='training augmentation by name (e.g. lip_video)')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a preset value, e.g. --set train.epochs=10')
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--out', default='benchmarks/results/avletters', help='output path without suffix')
    args = parser.parse_args(argv)

    overrides = parse_overrides(args.overrides)
    cfg = load_experiment(args.preset, overrides=overrides)
    methods = [m.strip() for m in args.methods.split(',')] if args.methods else list(cfg.methods)
    loso_methods = (methods if args.loso_methods == 'all'
                    else [m.strip() for m in args.loso_methods.split(',') if m.strip()])
    unknown = [m for m in set(methods) | set(loso_methods) if m not in cfg.methods]
    if unknown:
        parser.error(f'methods {unknown} are not in the preset ({cfg.methods})')
    folds = _parse_folds(args.folds)
    data_root = paths.data_root(args.data_root)

    jobs = [{'protocol': 'speaker_dependent', 'fold': None, 'method': m, 'seed': cfg.seed_offset + s}
            for s in range(args.seeds) for m in methods]
    jobs += [{'protocol': 'loso', 'fold': f, 'method': m, 'seed': f} for f in folds for m in loso_methods]
    jobs.sort(key=lambda j: -COST.get(j['method'], 2))              # longest first: even load at the end

    # read the files once in the parent; forked workers inherit the memoised arrays
    from centralnet_ros.config import from_dict
    from centralnet_ros.training.speech import AVLettersOptions, avletters_arrays
    avletters_arrays(data_root, from_dict(AVLettersOptions, dict(cfg.dataset_options)))

    command = command_line(argv, program='python benchmarks/avletters_benchmark.py')
    out = Path(args.out)
    payload = {'preset': args.preset, 'experiment': experiment_dict(cfg), 'methods': cfg.methods,
               'split_seed': cfg.dataset_options.get('seed', 0), 'command': command,
               'machine': machine_description(), 'workers': args.workers, 'augment': args.augment,
               'train': ', '.join(f'{k}={v}' for k, v in experiment_dict(cfg)['train'].items()
                                  if k not in ('device', 'progress', 'num_threads')),
               'date': _dt.date.today().isoformat(), 'runs': [], 'wall_time_s': 0.0}
    payload['machine']['torch_threads'] = 1
    print(f'{len(jobs)} runs ({args.seeds} seeds x {len(methods)} methods speaker-dependent, '
          f'{len(folds)} folds x {len(loso_methods)} methods LOSO) on {args.workers} workers', file=sys.stderr)
    start = time.perf_counter()
    ctx = mp.get_context('fork')
    with ctx.Pool(args.workers, initializer=_init_worker,
                  initargs=(args.preset, overrides, str(data_root), args.augment)) as pool:
        for i, record in enumerate(pool.imap_unordered(_run_job, jobs), 1):
            payload['runs'].append(record)
            payload['wall_time_s'] = time.perf_counter() - start
            where = record['protocol'] + (f' fold {record["fold"]}' if record['fold'] is not None else '')
            print(f'[{i}/{len(jobs)} {payload["wall_time_s"] / 60:.1f} min] {where:>22s} {record["method"]:>18s} '
                  f'seed {record["seed"]}: test {record["test"] * 100:.2f} % (val {record["val"] * 100:.2f}, '
                  f'epoch {record["best_epoch"]}, {record["wall_time_s"]:.0f} s)', file=sys.stderr, flush=True)
            atomic_write_text(out.with_suffix('.json'), json.dumps(payload, indent=1))
    payload['wall_time_s'] = time.perf_counter() - start
    payload['runs'].sort(key=lambda r: (r['protocol'], r['fold'] if r['fold'] is not None else -1,
                                        cfg.methods.index(r['method']), r['seed']))
    atomic_write_text(out.with_suffix('.json'), json.dumps(payload, indent=1))
    report = render(payload)
    atomic_write_text(out.with_suffix('.md'), report)
    print(report)
    print(f'wrote {out}.md and {out}.json', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
