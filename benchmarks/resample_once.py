"""
What resampling the speech audio once (format-2 bundles) changes against twice (format 1).

Format-1 speech bundles made the runtime resample the microphone to the manifest's
16 kHz, after which the HTK front end resampled again to its own 22.05 kHz; format 2
resamples once, straight to 22.05 kHz.  For a 16 kHz microphone the two paths run the
same arithmetic (the 16 kHz step is a no-op); above 16 kHz the old path threw away the
8-11 kHz band the front end's top mel channels see.  This script measures the change
on real speech input: letters spoken by espeak-ng (as ``centralnet demo`` does) at
several microphone rates, fed to the shipped speech bundle's audio branch (lips absent)
both ways.  Writes ``benchmarks/results/resample_once.md`` and ``.json``.

    python benchmarks/resample_once.py
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

from centralnet_ros import paths
from centralnet_ros.machine import command_line, machine_description, machine_line, write_results
import numpy as np

VOICES = ('en-us', 'en+f3', 'en+m3', 'en-gb')
RATES = (16000, 22050, 44100, 48000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from centralnet_ros.bundle.io import load_bundle
    from centralnet_ros.features.audio import resample_audio
    from centralnet_ros.features.pipelines import run_pipeline, Window
    from centralnet_ros.replay.session_bag import espeak_letter

    bundle = load_bundle(paths.models_dir() / 'speech')
    spec = bundle.manifest.modalities['mfcc']
    rate = int(spec.sample_rate)
    letters = bundle.manifest.labels
    rows = {}
    for mic in RATES:
        diffs, agree, right_old, right_new, n = [], 0, 0, 0, 0
        for voice in VOICES:
            for letter in letters:
                said = espeak_letter(letter, voice)
                if said is None:
                    print('espeak-ng is not installed', file=sys.stderr)
                    return 2
                wave, native = said
                x = resample_audio(wave, orig_sample_rate=native, new_sample_rate=mic)        # the microphone
                old = resample_audio(resample_audio(x, orig_sample_rate=mic, new_sample_rate=16000),
                                     orig_sample_rate=16000, new_sample_rate=rate)        # format 1: twice
                new = resample_audio(x, orig_sample_rate=mic, new_sample_rate=rate)       # format 2: once
                feats = [run_pipeline(spec.pipeline, Window(w, np.zeros(1, np.int64), sample_rate=rate),
                                      spec.preprocessing) for w in (old, new)]
                diffs.append(float(np.abs(feats[0] - feats[1]).max()))
                with torch.inference_mode():
                    preds = [letters[int(bundle.model({'mfcc': torch.from_numpy(f[None])}).logits.argmax())]
                             for f in feats]
                agree += preds[0] == preds[1]
                right_old += preds[0] == letter
                right_new += preds[1] == letter
                n += 1
        rows[mic] = {'utterances': n, 'max_abs_feature_diff': max(diffs), 'median_max_abs_feature_diff':
                     float(np.median(diffs)), 'decisions_equal': agree / n, 'accuracy_twice': right_old / n,
                     'accuracy_once': right_new / n}
        print(mic, rows[mic], flush=True)
    command = command_line(argv, program='python benchmarks/resample_once.py')
    out = Path(args.out)
    machine = machine_description()
    payload = {'machine': machine, 'front_end_rate': rate, 'voices': VOICES, 'rows': rows}
    lines = ['# Speech audio resampled once (bundle format 2) against twice (format 1)', '',
             f'Command: `{command}`  ', f'Machine: {machine_line(machine)}', '',
             f"The shipped speech bundle's audio branch (lips absent) on the 26 letters spoken by espeak-ng in "
             f'{len(VOICES)} voices ({", ".join(VOICES)}), delivered at each microphone rate; format 1 resampled '
             f"to 16 kHz and then to the front end's {rate} Hz, format 2 resamples once to {rate} Hz.", '',
             '| microphone (Hz) | utterances | max abs feature difference | median of per-utterance max | '
             'same decision | accuracy twice | accuracy once |', '|---|---|---|---|---|---|---|']
    for mic, r in rows.items():
        lines.append(f'| {mic} | {r["utterances"]} | {r["max_abs_feature_diff"]:.3g} | '
                     f'{r["median_max_abs_feature_diff"]:.3g} | {r["decisions_equal"] * 100:.1f} % | '
                     f'{r["accuracy_twice"] * 100:.1f} % | {r["accuracy_once"] * 100:.1f} % |')
    lines += ['', 'At 16 kHz the two paths are the same computation (difference 0): the `centralnet demo` '
              "bag and the microphone node's default rate see no change.  Synthetic voices are far from "
              "AVLetters' speakers, so the accuracies are low for both paths; the comparison is between paths."]
    write_results(out, 'resample_once', payload, markdown='\n'.join(lines), command=command)
    print(f'wrote {out / "resample_once.md"}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
