"""
Emotion decision threshold: how often an emotion is claimed for a neutral utterance, calibrated on training speakers.

A robot that answers "you sound angry" to someone speaking calmly does harm; an emotion
decision is a *false alarm* when the utterance is neutral and the published label is
another emotion.  The rule (the runtime's ``decision.mode: utterance``): publish the top
emotion when its posterior reaches ``threshold``.

Protocol (leave one speaker out, as ``emodb_benchmark.py``): for each test speaker the
model is the shipped preset's (``config/experiments/emodb_emotion.yaml``: its functionals,
per-speaker normalisation, speed copies and LDA ensemble) trained on the seven other speakers.  The
threshold is calibrated on those seven alone: each is held out once, scored by the LDA
of the six others as the robot hears it (per-voice adaptation online from the first
utterance, random order), and the threshold is the lowest that publishes an emotion for
at most ``--target`` of their neutral utterances.  It is then measured on the test
speaker (3 orders): neutral utterances published as an emotion, utterances published,
and the accuracy of what was published.  The fold of the bundle's test speaker (14) is
the shipped bundle's calibration; ``--write-manifest`` stores it in
``models/emotion/manifest.yaml`` (``decision``).

    python benchmarks/emotion_threshold_benchmark.py [--target 0.05] [--write-manifest]
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
import sys
import time

import numpy as np

SEEDS = 3


def _features(cfg, data_root: Path, cache: Path, speed: float = 1.0) -> dict[str, np.ndarray]:
    """
    Return the preset's functionals of every EmoDB file (cached), labels, speakers, seconds of speech.

    ``speed`` != 1: of the files played that much faster (the preset's ``train_speed_factors`` copies).
    """
    from centralnet_ros.config import atomic_savez
    from centralnet_ros.data import emodb
    from centralnet_ros.features import functionals as F
    from centralnet_ros.features.audio import speed_perturb
    feats = dict(cfg.dataset_options['features'])
    utts = emodb.list_utterances(data_root / 'emodb')
    key = hashlib.sha256(json.dumps([feats, F.functional_names(feats), [u.path.name for u in utts]],
                                    sort_keys=True).encode()).hexdigest()[:12]
    path = cache / (f'emodb_preset_functionals_{key}.npz' if speed == 1.0 else
                    f'emodb_preset_functionals_{key}_speed{speed:g}.npz')
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    rate = int(feats['sample_rate'])

    def wave(u):
        x = emodb.load_waveform(str(u.path), sample_rate=rate)
        return x if speed == 1.0 else speed_perturb(x, factor=speed)
    x = np.stack([F.emotion_functionals(wave(u), **feats) for u in utts])
    table = {'x': x.astype(np.float32), 'labels': np.asarray([u.label for u in utts], np.int64),
             'speakers': np.asarray([u.speaker for u in utts], np.int64)}
    table['speech_s'] = x[:, F.functional_names(feats).index('active_s')].astype(np.float64)
    atomic_savez(path, **table)
    return table


def _fit(t: dict, speakers, settings, train, columns, unadapted_weight: float = 0.0):
    """
    Fit the preset's model on ``speakers``: ``(norm, probabilities(z))``.

    Per-speaker normalised (prior from the recordings), trained on the recordings and their speed
    copies (``t['copies']``, each a voice of its own) by the preset's LDA or LDA ensemble; with
    ``unadapted_weight`` > 0 also on every row normalised with the prior of the other speakers
    (:func:`~centralnet_ros.training.emotion.unadapted_rows`), weighing that much.
    """
    from centralnet_ros.config import from_dict
    from centralnet_ros.features.normalisation import fit_prior, normalise_by_speaker, SpeakerNormalisation
    from centralnet_ros.training.emotion import stack_copies, unadapted_rows
    from centralnet_ros.training.trainer import lda_ensemble
    x, y, spk, w = t['x'], t['labels'], t['speakers'], t['speech_s']
    rows = np.isin(spk, speakers)
    mean, std = fit_prior(x[rows], spk[rows], w[rows])
    norm = from_dict(SpeakerNormalisation, {**settings, 'prior_mean': mean.tolist(), 'prior_std': std.tolist()})
    xs, ys, voices, ws = stack_copies([(x[rows], w[rows])] + [(c['x'][rows], c['speech_s'][rows]) for c in t['copies']],
                                      y[rows], spk[rows])
    xn, sw = normalise_by_speaker(xs, voices, norm, ws), None
    if unadapted_weight > 0:
        xn, ys = np.concatenate([xn, unadapted_rows(xs, voices, norm, ws)]), np.concatenate([ys, ys])
        sw = np.repeat([1.0, float(unadapted_weight)], len(xs))
    wt, b = lda_ensemble(xn, ys, 7, train.lda_shrinkages or [train.shrinkage], columns, sw)

    def probs(z):
        s = np.asarray(z, np.float64) @ wt.T + b
        s = np.exp(s - s.max(1, keepdims=True))
        return s / s.sum(1, keepdims=True)
    return norm, probs


def _heard(x, y, w, rows, norm, probs, seed):
    """Posteriors and labels of one speaker's utterances heard in a random order, adapting online from 0 s."""
    from centralnet_ros.runtime.adaptation import adapt_speaker_sequence
    order = np.random.default_rng(seed).permutation(rows)
    z, scored = adapt_speaker_sequence(x[order], norm, adapt_s=0.0, weights_s=w[order])
    return probs(z), y[order][scored]


def _false_alarm_scores(p: np.ndarray, labels: np.ndarray, neutral: int) -> np.ndarray:
    """Top score of each neutral utterance whose top emotion is not neutral (-inf: it would say neutral)."""
    sel = labels == neutral
    top = p[sel].argmax(1)
    return np.where(top != neutral, p[sel].max(1), -np.inf)


def _rates(p: np.ndarray, labels: np.ndarray, thr: float, neutral: int) -> dict:
    pub = p.max(1) >= thr
    pred = p.argmax(1)
    neu = labels == neutral
    return {'neutral_utterances': int(neu.sum()),
            'false_alarm_rate': float(np.mean(pub[neu] & (pred[neu] != neutral))) if neu.any() else None,
            'false_alarm_rate_without_threshold': float(np.mean(pred[neu] != neutral)) if neu.any() else None,
            'published': float(pub.mean()), 'emotional_published': float(pub[~neu].mean()),
            'accuracy_of_published': float(np.mean(pred[pub] == labels[pub])) if pub.any() else None,
            'accuracy_without_threshold': float(np.mean(pred == labels)), 'utterances': int(len(labels))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--target', type=float, default=0.05,
                        help='fraction of neutral utterances allowed to be published as another emotion')
    parser.add_argument('--write-manifest', action='store_true', help='store the threshold in models/emotion')
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    args = parser.parse_args(argv)
    from centralnet_ros import paths
    from centralnet_ros.config import atomic_write_text
    from centralnet_ros.data.emodb import EMOTIONS
    from centralnet_ros.machine import command_line, machine_description
    from centralnet_ros.replay.calibration import calibrate_threshold
    from centralnet_ros.training.experiment import load_experiment
    start = time.perf_counter()
    cfg = load_experiment('emodb_emotion')
    from centralnet_ros.features.functionals import functional_names
    from centralnet_ros.training.trainer import lda_columns
    settings = {k: v for k, v in cfg.dataset_options['speaker_normalisation'].items()}
    t = _features(cfg, paths.data_root(), paths.cache_dir())
    t['copies'] = [_features(cfg, paths.data_root(), paths.cache_dir(), speed=float(v))
                   for v in cfg.dataset_options.get('train_speed_factors', []) if float(v) != 1.0]
    columns = lda_columns(functional_names(cfg.dataset_options['features']), cfg.train.lda_drop_prefixes)
    model = {'shrinkages': list(cfg.train.lda_shrinkages or [cfg.train.shrinkage]),
             'drop_prefixes': [list(g) for g in cfg.train.lda_drop_prefixes],
             'speed_factors': [float(v) for v in cfg.dataset_options.get('train_speed_factors', [])],
             'unadapted_weight': float(cfg.dataset_options.get('unadapted_weight', 0.0))}
    unadapted = model['unadapted_weight']
    x, y, spk, w = t['x'], t['labels'], t['speakers'], t['speech_s']
    neutral = EMOTIONS.index('neutral')
    speakers = sorted(set(spk.tolist()))
    folds, pooled = [], {'p': [], 'y': [], 'thr': []}
    for test in speakers:
        train_s = [s for s in speakers if s != test]
        cal_scores, cal_pos = [], []
        for held in train_s:                                       # calibration: training speakers only
            norm, probs = _fit(t, [s for s in train_s if s != held], settings, cfg.train, columns, unadapted)
            p, lab = _heard(x, y, w, np.flatnonzero(spk == held), norm, probs, 7)
            cal_scores.append(_false_alarm_scores(p, lab, neutral))
            cal_pos.append(p[lab != neutral].max(1))
        thr, record = calibrate_threshold(np.concatenate(cal_scores), target_rate=args.target,
                                          positive_scores=np.concatenate(cal_pos))
        norm, probs = _fit(t, train_s, settings, cfg.train, columns, unadapted)
        heard = [_heard(x, y, w, np.flatnonzero(spk == test), norm, probs, 1000 + seed) for seed in range(SEEDS)]
        p, lab = np.concatenate([h[0] for h in heard]), np.concatenate([h[1] for h in heard])
        pooled['p'].append(p), pooled['y'].append(lab), pooled['thr'].append(np.full(len(lab), thr))
        folds.append({'test_speaker': f'{test:02d}', 'threshold': thr, 'calibration': record,
                      'test': _rates(p, lab, thr, neutral)})
        print(f'test speaker {test:02d}: threshold {thr:.3f}, false alarms {folds[-1]["test"]["false_alarm_rate"]:.3f}',
              flush=True)
    p, lab, thr = (np.concatenate(pooled[k]) for k in ('p', 'y', 'thr'))
    pub = p.max(1) >= thr
    pred = p.argmax(1)
    neu = lab == neutral
    summary = {'false_alarm_rate': float(np.mean(pub[neu] & (pred[neu] != neutral))),
               'false_alarm_rate_without_threshold': float(np.mean(pred[neu] != neutral)),
               'published': float(pub.mean()), 'emotional_published': float(pub[~neu].mean()),
               'accuracy_of_published': float(np.mean(pred[pub] == lab[pub])),
               'accuracy_without_threshold': float(np.mean(pred == lab)), 'neutral_utterances': int(neu.sum()),
               'utterances': int(len(lab))}
    result = {'benchmark': 'EmoDB emotion decision threshold (false alarms on neutral speech)',
              'target_rate': args.target, 'model': model, 'normalisation': settings, 'seeds': SEEDS,
              'rule': 'publish the top emotion when its posterior reaches the threshold; a false alarm: a neutral '
                      'utterance published as another emotion',
              'folds': folds, 'pooled_test': summary, 'machine': machine_description(),
              'wall_time_s': round(time.perf_counter() - start, 1), 'date': time.strftime('%Y-%m-%d'),
              'command': command_line(argv, program='python benchmarks/emotion_threshold_benchmark.py')}
    out = Path(args.out)
    atomic_write_text(out / 'emotion_threshold.json', json.dumps(result, indent=1) + '\n')
    md = render(result)
    atomic_write_text(out / 'emotion_threshold.md', md)
    print(md)
    if args.write_manifest:
        shipped = next(f for f in folds if f['test_speaker'] == _bundle_test_speaker())
        write_decision(paths.models_dir() / 'emotion', shipped, args.target)
    return 0


def _bundle_test_speaker() -> str:
    import yaml
    from centralnet_ros import paths
    m = yaml.safe_load((paths.models_dir() / 'emotion' / 'manifest.yaml').read_text())
    return str(m['evaluation']['test_speaker'])


def write_decision(bundle_dir: Path, fold: dict, target: float) -> None:
    """Store the calibrated threshold in the emotion bundle manifest's ``decision`` section (atomically)."""
    import yaml
    from centralnet_ros.config import atomic_write_text
    path = bundle_dir / 'manifest.yaml'
    data = yaml.safe_load(path.read_text())
    old = data.get('decision') or {}
    cal = fold['calibration']
    data['decision'] = {
        'mode': 'utterance', 'threshold': round(float(fold['threshold']), 6), 'reject_labels': [],
        'required_modalities': ['audio'], 'state_time_constant_s': float(old.get('state_time_constant_s', 0.0)),
        'calibration': {
            'data': ("neutral utterances of the bundle's training speakers, each held out once from the model of "
                     f'the six others, heard adapting online from 0 s (test speaker {fold["test_speaker"]} not used)'),
            'rule': 'false alarm: a neutral utterance published as another emotion',
            'target_false_alarm_rate': target, 'negatives': cal['negatives'],
            'negative_rate': round(cal['negative_rate'], 4), 'emotional_kept': round(cal['positive_kept'], 4),
            'test_false_alarm_rate': round(fold['test']['false_alarm_rate'], 4),
            'test_published': round(fold['test']['published'], 4),
            'benchmark': 'benchmarks/results/emotion_threshold.md'}}
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _p(v) -> str:
    return '-' if v is None else f'{100 * v:.1f} %'


def _model_words(m: dict) -> str:
    words = 'own functionals, per-speaker normalisation, '
    if m.get('speed_factors'):
        words += 'speed copies ' + ' / '.join(f'{v:g}' for v in m['speed_factors']) + ', '
    if m.get('unadapted_weight'):
        words += (f'unadapted rows (normalised with the prior of the other training speakers) weighing '
                  f'{m["unadapted_weight"]:g}, ')
    if len(m['shrinkages']) > 1 or m['drop_prefixes']:
        return words + (f'ensemble of {max(1, len(m["drop_prefixes"])) * len(m["shrinkages"])} shrinkage LDAs (feature '
                        f'groups leaving out {m["drop_prefixes"]}, shrinkages {m["shrinkages"]}), scores averaged')
    return words + f'shrinkage LDA {m["shrinkages"][0]:g}'


def render(r: dict) -> str:
    s = r['pooled_test']
    lines = ['# Emotion decision threshold: false alarms on neutral speech (EmoDB, leave one speaker out)', '',
             f'Rule: {r["rule"]}. The threshold is calibrated per fold on the seven training speakers alone (each '
             'held out once from the LDA of the six others, heard as the robot hears it: per-voice adaptation '
             f'online from the first utterance) for at most {_p(r["target_rate"])} of their neutral utterances '
             f'published as an emotion; then measured on the test speaker ({r["seeds"]} random orders). Model: '
             f'the shipped preset ({_model_words(r["model"])}).',
             '', '| test speaker | threshold | neutral utterances published as an emotion (no threshold) | '
             'published | emotional utterances published | accuracy of published (all, no threshold) |',
             '|---|---|---|---|---|---|']
    for f in r['folds']:
        t = f['test']
        lines.append(f'| {f["test_speaker"]} | {f["threshold"]:.3f} | {_p(t["false_alarm_rate"])} '
                     f'({_p(t["false_alarm_rate_without_threshold"])}) | {_p(t["published"])} | '
                     f'{_p(t["emotional_published"])} | {_p(t["accuracy_of_published"])} '
                     f'({_p(t["accuracy_without_threshold"])}) |')
    lines.append(f'| **pooled** | | **{_p(s["false_alarm_rate"])}** ({_p(s["false_alarm_rate_without_threshold"])}) | '
                 f'{_p(s["published"])} | {_p(s["emotional_published"])} | {_p(s["accuracy_of_published"])} '
                 f'({_p(s["accuracy_without_threshold"])}) |')
    m = r['machine']
    lines += ['', f'{s["utterances"]} scored utterances ({s["neutral_utterances"]} neutral) over the folds and orders. '
              'The shipped bundle (`models/emotion`) carries the threshold of the fold of its own test speaker '
              '(manifest `decision`).', '',
              f'{r["wall_time_s"]:.0f} s on {m.get("cpu_model", m["processor"])} x{m["cpu_count"]}, {r["date"]}.', '',
              f'Command: `{r["command"]}`', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
