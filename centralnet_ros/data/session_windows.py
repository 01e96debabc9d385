"""
Model inputs the runtime built over recorded sessions, stored as plain arrays (``.npz`` + a JSON header).

The file is written by ``centralnet speech-windows`` (through
:func:`centralnet_ros.replay.session_windows.session_windows`, the node's own path)
and read by training (:mod:`centralnet_ros.training.non_letters`), which may not
import the replay: this module is the contract between the two.  Arrays:
``x_<modality>`` float32 ``(N, ...)``, ``labels``, ``sources``, ``sessions``,
``splits`` (fixed-width unicode, one per window) and ``header`` (one JSON string:
what made the windows).  Nothing is unpickled.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ['Windows', 'concatenate', 'save_windows', 'load_windows', 'FORMAT']

FORMAT = 'centralnet_ros.session_windows/1'


@dataclasses.dataclass
class Windows:
    """Model inputs the runtime built over sessions: ``inputs[modality]`` ``(N, ...)`` and one label per window."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray                 # (N,) str: the label of the utterance the decision fell in
    sources: np.ndarray                # (N,) str: where the utterance came from (e.g. ``fsdd:george``)
    sessions: np.ndarray               # (N,) str: the session (bag) name
    notes: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def concatenate(parts: Sequence[Windows]) -> Windows:
    """One :class:`Windows` of several (the same modalities in each non-empty part)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Windows(inputs={}, labels=np.zeros(0, str), sources=np.zeros(0, str), sessions=np.zeros(0, str))
    modalities = set(parts[0].inputs)
    for p in parts:
        if set(p.inputs) != modalities:
            raise ValueError(f'sessions with different modalities: {sorted(modalities)} vs {sorted(p.inputs)}')
    return Windows(inputs={m: np.concatenate([p.inputs[m] for p in parts]) for m in sorted(modalities)},
                   labels=np.concatenate([p.labels for p in parts]), sources=np.concatenate([p.sources for p in parts]),
                   sessions=np.concatenate([p.sessions for p in parts]), notes=[n for p in parts for n in p.notes])


def save_windows(path: str | Path, windows: Windows, *, splits: np.ndarray, header: dict[str, Any]) -> Path:
    """
    Write ``windows`` with a split name per window and a JSON ``header`` (what made them) as a plain ``.npz``.

    Arrays: ``x_<modality>`` float32, ``labels``, ``sources``, ``sessions``, ``splits``
    (fixed-width unicode), ``header`` (one JSON string).
    """
    from centralnet_ros.config import atomic_savez
    splits = np.asarray(splits, dtype=str)
    if splits.shape != (len(windows),):
        raise ValueError(f'one split per window expected ({len(windows)}), got shape {splits.shape}')
    head = {'format': FORMAT, **header, 'notes': windows.notes}
    return atomic_savez(Path(path), header=np.asarray(json.dumps(head, sort_keys=True)),
                        labels=windows.labels, sources=windows.sources, sessions=windows.sessions, splits=splits,
                        **{f'x_{m}': x for m, x in windows.inputs.items()})


def load_windows(path: str | Path) -> tuple[Windows, np.ndarray, dict[str, Any]]:
    """``(windows, splits, header)`` of a file written by :func:`save_windows`; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such session-windows file')
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z['header']))
            arrays = {k: z[k] for k in z.files}
    except (ValueError, KeyError, OSError, json.JSONDecodeError) as exc:
        raise ValueError(f'{path}: not a session-windows file ({exc})') from None
    if header.get('format') != FORMAT:
        raise ValueError(f'{path}: format {header.get("format")!r}, expected {FORMAT!r}')
    windows = Windows(inputs={k[2:]: arrays[k] for k in arrays if k.startswith('x_')}, labels=arrays['labels'],
                      sources=arrays['sources'], sessions=arrays['sessions'], notes=list(header.get('notes', [])))
    return windows, arrays['splits'], header
