"""
AVLetters: CentralNet and the baselines over seeds, for both protocols of issue 3.

The preset ``config/experiments/avletters_protocols.yaml`` (the ``avletters`` preset plus two
variants) declares the runs:

* ``speaker_dependent``: the report's random 600/180 split (52 validation samples carved
  from the 600), every method of the preset over 3 training seeds;
* ``loso``: leave-one-speaker-out, 10 folds (one per speaker; the next speaker is the
  validation set), one training seed per fold (seed = fold), for the two single
  modalities, late fusion and CentralNet (all seven methods over 10 folds do not fit the
  ~25 min budget of this shared 2-core machine).

Each run is the preset's network and training settings through the project's trainer (the
weights of the best validation epoch evaluated on the test part), exactly what ``centralnet
compare`` runs, through the same sweep (:mod:`centralnet_ros.training.sweep`: local pool or
Ray, ``--resume``, ``runs.json`` rewritten atomically after every run) into ``--runs``;
:func:`render` turns that ``runs.json`` into ``<out>.md`` and ``<out>.json`` with the
published figures (``--render-only`` re-renders without training).

Usage::

    python benchmarks/avletters_benchmark.py [--seeds 3] [--folds 0-9] [--jobs 2]
        [--augment lip_video] [--set train.epochs=20] [--out benchmarks/results/avletters]
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

from centralnet_ros import paths
from centralnet_ros.evaluation.statistics import mean_std, two_sample_z_test
from centralnet_ros.machine import command_line, write_results
from centralnet_ros.training import sweep
from centralnet_ros.training.experiment import experiment_dict, load_experiment, parse_overrides
import numpy as np

PRESET = 'avletters_protocols'
REFERENCE = {   # published figures, for orientation (speaker-dependent unless noted)
    'unimodal:mfcc': ('77.84', 'Hsieh 2017 internship report, audio MFCC CNN, speaker-dependent 600/180'),
    'unimodal:lip_video': ('54.32 (report) / ~64 (literature)',
                           'report: lip 3-D CNN, speaker-dependent 600/180; literature: video-only '
                           'AVLetters ~64 % (e.g. Ngiam et al. 2011, 64.4 %; their protocol differs)'),
}
COST = {'unimodal:mfcc': 1, 'unimodal:lip_video': 3, 'early': 2, 'late': 4, 'gmu': 4, 'moddrop': 4, 'centralnet': 4}


def run(cfg, data, spec) -> dict:
    """Train one run as ``centralnet compare`` does; add its protocol and test speaker (a sweep's ``run``)."""
    record = sweep.default_run(cfg, data, spec)
    record.pop('history', None)
    return {'protocol': cfg.dataset_options['protocol'], **record, 'test_speaker': data.info.get('test_speaker')}


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


def result(runs_json: dict) -> dict:
    """Turn a sweep's ``runs.json`` into the result file's payload (runs by protocol, fold, method, seed)."""
    from centralnet_ros.config import from_dict
    from centralnet_ros.training.experiment import ExperimentConfig
    cfg = from_dict(ExperimentConfig, runs_json['experiment'])
    info = runs_json.get('data', {})
    order = {m: i for i, m in enumerate(cfg.methods)}
    runs = sorted(runs_json['runs'], key=lambda r: (r['protocol'], r.get('fold', -1), order[r['method']], r['seed']))
    runs = [{'fold': None, **r} for r in runs]
    train = experiment_dict(cfg)['train']
    return {'preset': cfg.name, 'experiment': experiment_dict(cfg), 'methods': cfg.methods,
            'split_seed': cfg.dataset_options.get('seed', 0), 'machine': runs_json['machine'],
            'workers': info.get('jobs', 1), 'augment': cfg.augment or None,
            'train': ', '.join(f'{k}={v}' for k, v in train.items() if k not in ('device', 'progress', 'num_threads')),
            'runs': runs}


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
              f'- training time: {total / 60:.1f} min summed over {len(runs)} runs',
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
    parser.add_argument('--preset', default=PRESET)
    parser.add_argument('--variants', default=None, help='comma-separated protocols (default: both)')
    parser.add_argument('--seeds', type=int, default=None,
                        help="training seeds per method and fold (default: the preset's, 3 speaker-dependent, "
                             '1 per LOSO fold)')
    parser.add_argument('--folds', default=None, help='LOSO folds, e.g. 0-9 or 0,3,5 (default: all)')
    parser.add_argument('--methods', default=None, help='comma-separated subset of the preset methods')
    parser.add_argument('--augment', default=None, help='training augmentation by name (e.g. lip_video)')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a preset value, e.g. --set train.epochs=10')
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--out', default='benchmarks/results/avletters', help='output path without suffix')
    sweep.add_arguments(parser, runs='runs/avletters_benchmark')
    args = parser.parse_args(argv)

    cfg = plan = None
    overrides = parse_overrides(args.overrides)
    if args.augment:
        overrides['augment'] = args.augment
    if not args.render_only:
        cfg = load_experiment(args.preset, overrides={**overrides, 'train.progress': False, 'train.num_threads': 1})
        methods = [m.strip() for m in args.methods.split(',')] if args.methods else None
        unknown = [m for m in methods or [] if m not in cfg.methods]
        if unknown:
            parser.error(f'methods {unknown} are not in the preset ({cfg.methods})')
        variants = [v.strip() for v in args.variants.split(',') if v.strip()] if args.variants else None
        folds = _parse_folds(args.folds) if args.folds is not None else None
        plan = sorted(sweep.plan_runs(cfg, methods=methods, variants=variants, folds=folds, seeds=args.seeds),
                      key=lambda spec: -COST.get(spec.method, 2))        # longest first: even load at the end
        print(f'{len(plan)} runs on {args.jobs} workers', file=sys.stderr)
    runs = sweep.sweep_from_args(args, cfg, plan, run=run, data_root=paths.data_root(args.data_root),
                                 command=command_line(argv, program='python benchmarks/avletters_benchmark.py'),
                                 info={'overrides': overrides})
    out = Path(args.out)
    report = write_results(out.parent, out.name, result(runs), render, command=runs['command'], indent=1)
    print(report)
    print(f'wrote {out}.md and {out}.json', file=sys.stderr)
    return 0 if not runs['failed'] else 1


if __name__ == '__main__':
    sys.exit(main())
