"""
Speech open-set rejection: how often a letter is published on speech that is no letter.

The shipped speech bundle (``models/speech``, or ``--bundle``) hears:

* **letters** -- the AVLetters speaker-dependent test split the bundle was measured on
  (MFCC + lips), to see what the rejection rule costs on real letters;
* **non-letters of speakers the bundle never heard** -- FSDD spoken digits (English) and
  EmoDB sentences (German), each clip one utterance through the runtime's ``htk_mfcc``
  pipeline, with the lips absent (no mouth camera) and, separately, with the lip video
  of a random AVLetters test letter (a face in front of the camera saying something
  else);
* **synthetic letters** -- A-Z spoken by the espeak-ng voice ``en-gb`` (three variants; the
  demo's voice, never used in training) through the same pipeline (audio only), a control
  that the rejection does not simply reject our front end.

Each group of non-letters is heard twice: as whole clips (one clip = one utterance,
``training.non_letters.utterance_mfcc``) and **through the runtime's windows**: the
group's clips as one recorded session (a rosbag2 of the continuous microphone
stream, :func:`~centralnet_ros.replay.session_windows.session_windows`) replayed
through the runtime's buffers, voice-activity detector and window, so every input is
what the robot feeds the model (lips absent: the sessions are audio only).  The
threshold is calibrated on the calibration speakers' clips and windows together.

The rule: publish the top letter when its score reaches a threshold (and it is not a
rejection class).  The threshold is calibrated on the *calibration speakers* (FSDD
lucas; EmoDB speakers 09, 10: the validation speakers of the not_a_letter class) for the
target rate, then measured on the *test speakers* (FSDD nicolas, theo, yweweler; EmoDB
11-16), whom no training or calibration heard. The speakers of the class's training
data (FSDD george, jackson; EmoDB 03, 08) are left out.  Letter
accuracy with the rule counts a rejected letter as wrong.  ``--write-manifest`` stores
the threshold and its calibration record in the bundle manifest's ``decision`` section.

    python benchmarks/speech_rejection_benchmark.py [--target 0.05] [--write-manifest]
"""
from __future__ import annotations

import argparse
from pathlib import Path
import shutil
import sys
import time

import numpy as np

FSDD_TRAIN, EMODB_TRAIN = ('george', 'jackson'), (3, 8)      # training.non_letters.SPEAKERS['train']
FSDD_CAL, EMODB_CAL = ('lucas',), (9, 10)                      # ... ['val']: calibration
VOICES = ('en-gb', 'en-gb+f2', 'en-gb+m3')      # en-gb: never in training (training.non_letters.SYNTHETIC_VOICES)


def _probs(model, inputs: dict, present: np.ndarray) -> np.ndarray:
    import torch
    with torch.inference_mode():
        x = {m: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for m, v in inputs.items()}
        logits = model(x, torch.from_numpy(present.astype(np.float32))).logits.numpy()
    z = logits - logits.max(1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


def _mfcc(wave: np.ndarray, sample_rate: int, params: dict) -> np.ndarray:
    from centralnet_ros.training.non_letters import utterance_mfcc
    return utterance_mfcc(wave, sample_rate, num_frames=params.get('num_frames', 24),
                          mfcc_norm=params.get('mfcc_norm', 'none'))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--bundle', default=None, help='speech bundle folder (default: models/speech)')
    parser.add_argument('--target', type=float, default=0.05, help='fraction of non-letters allowed through')
    parser.add_argument('--fsdd-per-speaker', type=int, default=100, help='FSDD clips per speaker (10 per digit)')
    parser.add_argument('--write-manifest', action='store_true')
    parser.add_argument('--note', default='', help='a note printed in the result file (e.g. how the bundle was chosen)')
    parser.add_argument('--work', default=None, help='folder for the temporary session bags (default: a temp dir)')
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    from centralnet_ros import paths
    from centralnet_ros.bundle import load_bundle
    from centralnet_ros.data import emodb, fsdd
    from centralnet_ros.machine import command_line, machine_line, write_results
    from centralnet_ros.replay.calibration import calibrate_threshold
    from centralnet_ros.training.experiment import load_experiment
    from centralnet_ros.training.non_letters import espeak_letter
    from centralnet_ros.training.speech import load_avletters

    start = time.perf_counter()
    root = Path(__file__).resolve().parents[1]
    bundle_dir = Path(args.bundle) if args.bundle else root / 'models' / 'speech'
    bundle = load_bundle(bundle_dir, device='cpu')
    model = bundle.model.eval()
    man = bundle.manifest
    labels = list(man.labels)
    reject = [i for i, n in enumerate(labels) if n in ('not_a_letter', 'none')]
    letters = [i for i in range(len(labels)) if i not in reject]
    modalities = list(model.modalities)
    mfcc_params = dict(man.modalities['mfcc'].preprocessing)
    data_root = paths.data_root()
    command = command_line(argv, program='python benchmarks/speech_rejection_benchmark.py')

    # letters: the AVLetters split the bundle was measured on
    preset = man.training.get('preset', 'avletters_speech')
    cfg = load_experiment(preset)
    options = dict(cfg.dataset_options)
    if options.get('not_a_letter'):          # only the test split is read here: no runtime-window file needed
        options['not_a_letter'] = {**options['not_a_letter'], 'runtime_windows': None}
    data = load_avletters(options, data_root)
    test = data.test.subset(np.flatnonzero(data.test.labels < 26))       # the letters (no not_a_letter rows)
    both = np.ones((len(test), len(modalities)), np.float32)
    p_letters = _probs(model, test.inputs, both)
    y_letters = test.labels

    def top_letter(p):
        k = np.asarray(letters)[np.argmax(p[:, letters], axis=1)]
        return k, p[np.arange(len(p)), k], np.argmax(p, axis=1)

    # non-letters of unseen speakers
    rng = np.random.default_rng(0)
    clips = []
    per = {}
    for c in fsdd.list_clips(data_root / 'fsdd'):
        per.setdefault(c.speaker, []).append(c)
    for speaker, cs in sorted(per.items()):
        if speaker in FSDD_TRAIN:
            continue
        keep = sorted(cs, key=lambda c: (c.index, c.digit))[:args.fsdd_per_speaker]
        for c in keep:
            clips.append(('fsdd', speaker, speaker in FSDD_CAL, fsdd.read_wav(c.path), fsdd.SAMPLE_RATE))
    for u in emodb.list_utterances(data_root / 'emodb'):
        if u.speaker in EMODB_TRAIN:
            continue
        wave, sr = emodb.read_wav(u.path)
        clips.append(('emodb', f'{u.speaker:02d}', u.speaker in EMODB_CAL, wave, sr))
    mfcc = np.stack([_mfcc(w, sr, mfcc_params) for _, _, _, w, sr in clips])
    n = len(clips)
    lip_index = modalities.index('lip_video') if 'lip_video' in modalities else None
    inputs_absent = {'mfcc': mfcc}
    present_absent = np.zeros((n, len(modalities)), np.float32)
    present_absent[:, modalities.index('mfcc')] = 1
    if lip_index is not None:
        inputs_absent['lip_video'] = np.zeros((n, *test.inputs['lip_video'].shape[1:]), np.float32)
    p_neg_absent = _probs(model, inputs_absent, present_absent)
    p_neg_lips = None
    if lip_index is not None:
        lips = test.inputs['lip_video'][rng.integers(0, len(test), n)]
        p_neg_lips = _probs(model, {'mfcc': mfcc, 'lip_video': lips}, np.ones((n, len(modalities)), np.float32))
    cal = np.asarray([c[2] for c in clips])
    corpus = np.asarray([c[0] for c in clips])
    speaker = np.asarray([c[1] for c in clips])

    # the same clips through the runtime's windows: one session per (corpus, speaker), lips absent
    win = _runtime_windows(bundle, clips, args.work)
    p_win = {}
    for key, x in win.items():
        pw = np.zeros((len(x), len(modalities)), np.float32)
        pw[:, modalities.index('mfcc')] = 1
        xw = {'mfcc': x}
        if lip_index is not None:
            xw['lip_video'] = np.zeros((len(x), *test.inputs['lip_video'].shape[1:]), np.float32)
        p_win[key] = _probs(model, xw, pw)

    # synthetic letters (audio only)
    synth_x, synth_y = [], []
    for voice in VOICES:
        for k, letter in enumerate(labels[:26]):
            if shutil.which('espeak-ng') is None:
                break
            out = espeak_letter(letter, voice)
            synth_x.append(_mfcc(out[0], out[1], mfcc_params))
            synth_y.append(k)
    p_synth = None
    if synth_x:
        ps = np.zeros((len(synth_x), len(modalities)), np.float32)
        ps[:, modalities.index('mfcc')] = 1
        sx = {'mfcc': np.stack(synth_x)}
        if lip_index is not None:
            sx['lip_video'] = np.zeros((len(synth_x), *test.inputs['lip_video'].shape[1:]), np.float32)
        p_synth = _probs(model, sx, ps)

    # calibrate on the calibration speakers (both lip conditions), measure on the test speakers
    def scores(p):
        k, s, arg = top_letter(p)
        return np.where(np.isin(arg, reject), -np.inf, s)

    cal_scores = [scores(p_neg_absent)[cal]] + ([scores(p_neg_lips)[cal]] if p_neg_lips is not None else [])
    cal_keys = {(c[0], c[1]) for c in clips if c[2]}
    cal_scores += [scores(p) for key, p in p_win.items() if key in cal_keys]
    kl, sl, argl = top_letter(p_letters)
    thr, record = calibrate_threshold(np.concatenate(cal_scores), target_rate=args.target,
                                      positive_scores=np.where(np.isin(argl, reject), -np.inf, sl))

    def published(p, t):
        return scores(p) >= t

    def rate(mask):
        return float(np.mean(mask)) if len(mask) else None

    rows = {}
    for name, p in (('lips absent', p_neg_absent), ('mismatched lips', p_neg_lips)):
        if p is None:
            continue
        for which, sel in (('calibration speakers', cal), ('test speakers', ~cal)):
            for corp in ('fsdd', 'emodb'):
                m = sel & (corpus == corp)
                rows[f'{corp}, {name}, {which}'] = {
                    'utterances': int(m.sum()), 'published_no_rule': rate(published(p[m], 0.0)),
                    'published_with_rule': rate(published(p[m], thr))}
    per_speaker = []
    for key, p in p_win.items():
        m = (corpus == key[0]) & (speaker == key[1])
        per_speaker.append({'corpus': key[0], 'speaker': key[1],
                            'role': 'calibration' if key in cal_keys else 'test',
                            'whole_clips': int(m.sum()),
                            'whole_published_no_rule': rate(published(p_neg_absent[m], 0.0)),
                            'whole_published_with_rule': rate(published(p_neg_absent[m], thr)),
                            'windows': int(len(p)), 'windows_published_no_rule': rate(published(p, 0.0)),
                            'windows_published_with_rule': rate(published(p, thr))})
    for role in ('calibration', 'test'):
        for corp in ('fsdd', 'emodb'):
            ps = [p for key, p in p_win.items() if key[0] == corp and (key in cal_keys) == (role == 'calibration')]
            if ps:
                pc = np.concatenate(ps)
                rows[f'{corp}, runtime windows (lips absent), {role} speakers'] = {
                    'utterances': int(len(pc)), 'published_no_rule': rate(published(pc, 0.0)),
                    'published_with_rule': rate(published(pc, thr))}
    acc_no_rule = float(np.mean(argl == y_letters))
    acc_rule = float(np.mean((kl == y_letters) & (scores(p_letters) >= thr)))
    synth = None
    if p_synth is not None:
        ks, ss, args_ = top_letter(p_synth)
        pub = scores(p_synth) >= thr
        synth = {'utterances': len(synth_y), 'voices': list(VOICES), 'accuracy_no_rule':
                 float(np.mean(ks == np.asarray(synth_y))), 'published_with_rule': float(np.mean(pub)),
                 'correct_and_published': float(np.mean(pub & (ks == np.asarray(synth_y))))}
    test_sel = ~cal
    worst = max(v['published_with_rule'] for k, v in rows.items() if 'test speakers' in k)
    pooled_test = {name: rate(published(p[test_sel], thr)) for name, p in
                   (('lips absent', p_neg_absent), ('mismatched lips', p_neg_lips)) if p is not None}
    test_windows = [p for key, p in p_win.items() if key not in cal_keys]
    if test_windows:
        pooled_test['runtime windows'] = rate(published(np.concatenate(test_windows), thr))
    result = {'benchmark': 'speech open-set rejection', 'bundle': str(bundle_dir.relative_to(root))
              if bundle_dir.is_relative_to(root) else str(bundle_dir), 'labels': len(labels),
              'bundle_weights_sha256': man.weights_sha256,
              'rule': 'publish the top letter when its posterior >= threshold and the top class is no rejection class',
              'target_rate': args.target, 'threshold': thr, 'calibration': record,
              'calibration_speakers': {'fsdd': list(FSDD_CAL), 'emodb': [f'{s:02d}' for s in EMODB_CAL]},
              'letters': {'split': data.info.get('protocol', 'speaker_dependent'), 'utterances': int(len(y_letters)),
                          'accuracy_no_rule': acc_no_rule, 'accuracy_with_rule': acc_rule,
                          'published': float(np.mean(scores(p_letters) >= thr))},
              'non_letters': rows, 'non_letters_test_pooled': pooled_test, 'worst_test_rate': worst,
              'per_speaker': per_speaker, 'note': args.note,
              'synthetic_letters': synth, 'wall_time_s': round(time.perf_counter() - start, 1),
              'machine': machine_line(), 'command': command, 'date': time.strftime('%Y-%m-%d')}
    print(write_results(args.out, 'speech_rejection', result, render, command=command))
    if args.write_manifest:
        write_decision(bundle_dir, thr, record, result)
    return 0


def _runtime_windows(bundle, clips: list, work: str | None) -> dict:
    """``{(corpus, speaker): mfcc windows}``: each speaker's clips as one session replayed through the runtime."""
    import tempfile
    from centralnet_ros.replay.cli import build_config
    from centralnet_ros.replay.session_bag import Utterance
    from centralnet_ros.replay.session_windows import session_windows
    cfg, _ = build_config(tasks=['speech'], bundles={'speech': str(bundle.path)})
    groups: dict = {}
    for corpus, spk, _, wave, sr in clips:
        groups.setdefault((corpus, spk), []).append(Utterance('not_a_letter', wave, sr))
    out = {}
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        for (corpus, spk), utts in groups.items():
            got = session_windows(f'{corpus}_{spk}', utts, [f'{corpus}:{spk}'] * len(utts), config=cfg,
                                  bundle=bundle, work=tmp, gap_s=0.8)
            print(got.notes[0], flush=True)
            out[(corpus, spk)] = got.inputs['mfcc'] if len(got) else np.zeros((0, 1, 26, 24), np.float32)
    return out


def write_decision(bundle_dir: Path, threshold: float, record: dict, result: dict) -> None:
    """Store the calibrated threshold in the manifest's ``decision`` section (atomically)."""
    import yaml
    from centralnet_ros.config import atomic_write_text
    path = bundle_dir / 'manifest.yaml'
    data = yaml.safe_load(path.read_text())
    data['decision'] = {
        'mode': 'utterance', 'threshold': round(float(threshold), 6),
        'reject_labels': ['not_a_letter', 'none'], 'required_modalities': ['mfcc'],
        'calibration': {'data': ('non-letter utterances of the validation speakers: FSDD lucas; EmoDB 09, 10 '
                                 '(whole clips with lips absent and mismatched, and the runtime windows of '
                                 'their sessions)'),
                        'target_false_publish_rate': result['target_rate'],
                        'negatives': record['negatives'], 'negative_rate': round(record['negative_rate'], 4),
                        'letters_kept': round(record.get('positive_kept') or 0.0, 4),
                        'benchmark': 'benchmarks/results/speech_rejection.md'},
    }
    data.setdefault('metrics', {}).update({
        'test_letter_accuracy': round(result['letters']['accuracy_with_rule'], 4),
        'test_non_letters_published': round(max(result['non_letters_test_pooled'].values()), 4)})
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _p(x) -> str:
    return '-' if x is None else f'{x * 100:.1f} %'


def render(r: dict) -> str:
    """Markdown of a result."""
    lt = r['letters']
    lines = [f'# Speech: letters published on speech that is no letter ({r["bundle"]})', '',
             *([f'Bundle weights sha256 {r["bundle_weights_sha256"][:12]}.', ''] if r.get('bundle_weights_sha256')
               else []),
             *([f'Note: {r["note"]}', ''] if r.get('note') else []),
             f'Rule: {r["rule"]}. Threshold {r["threshold"]:.4f}, calibrated for at most {_p(r["target_rate"])} '
             f'published on the calibration speakers\' non-letter utterances ({r["calibration"]["negatives"]}; '
             f'reached {_p(r["calibration"]["negative_rate"])}).', '',
             '| utterances | n | letter published, no rule | with the rule |', '|---|---|---|---|']
    for k, v in r['non_letters'].items():
        lines.append(f'| {k} | {v["utterances"]} | {_p(v["published_no_rule"])} | {_p(v["published_with_rule"])} |')
    if r.get('per_speaker'):
        lines += ['', 'Per speaker, lips absent: whole clips and the runtime windows of the same clips played as one '
                  'session (letter published with the rule; no rule in brackets):', '',
                  '| corpus | speaker | role | whole clips | published (%) | runtime windows | published (%) |',
                  '|---|---|---|---|---|---|---|']
        for x in r['per_speaker']:
            lines.append(f'| {x["corpus"]} | {x["speaker"]} | {x["role"]} | {x["whole_clips"]} | '
                         f'{_p(x["whole_published_with_rule"])} ({_p(x["whole_published_no_rule"])}) | '
                         f'{x["windows"]} | {_p(x["windows_published_with_rule"])} '
                         f'({_p(x["windows_published_no_rule"])}) |')
    lines += ['', 'Test speakers pooled: ' + ', '.join(f'{k} {_p(v)}' for k, v in r['non_letters_test_pooled'].items())
              + f'; worst group {_p(r["worst_test_rate"])} (goal <= 5 %).', '',
              f'Letters (AVLetters {lt["split"]}, {lt["utterances"]} test utterances, lips + MFCC): accuracy '
              f'{_p(lt["accuracy_no_rule"])} without the rule, {_p(lt["accuracy_with_rule"])} with it (a rejected '
              f'letter counts as wrong; {_p(lt["published"])} published).', '']
    if r['synthetic_letters']:
        s = r['synthetic_letters']
        lines += [f'Synthetic letters (espeak-ng, {", ".join(s["voices"])}; {s["utterances"]} utterances, audio '
                  f'only): {_p(s["accuracy_no_rule"])} correct without the rule; {_p(s["published_with_rule"])} '
                  f'published with it, {_p(s["correct_and_published"])} published and correct.', '']
    lines += [f'Wall time {r["wall_time_s"]:.0f} s on {r["machine"]}, {r["date"]}.', '',
              f'Command: `{r["command"]}`', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
