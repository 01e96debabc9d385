"""
AudioSet (Gemmeke et al. 2017), the released VGGish embeddings, "Domestic animals, pets" subset.

Layout under the dataset folder (``<data root>/audioset``), as the embeddings are
distributed (``features.tar.gz`` unpacked) plus the class list::

    class_labels_indices.csv                 index,mid,display_name (527 rows)
    audioset_v1_embeddings/bal_train/*.tfrecord
    audioset_v1_embeddings/eval/*.tfrecord
    audioset_v1_embeddings/unbal_train/*.tfrecord   (optional)
    visual/{split}/{video_id}_{start_ms}.npy        (optional: one visual feature vector per segment)

Each record is a ``tf.train.SequenceExample``: context ``video_id`` (bytes),
``start_time_seconds`` / ``end_time_seconds`` (float) and ``labels`` (int64 class indices);
feature list ``audio_embedding``: one 128-byte string per second (VGGish PCA embedding
quantised to uint8 over [-2, 2]).  Segments are 10 s: shorter ones are zero-padded and
their number of valid seconds is kept.

The subset keeps the segments carrying at least one of the 13 classes under
"Domestic animals, pets" (the class itself, Dog and its 6 sounds, Cat and its 4 sounds),
with labels restricted to those classes (multi-label; micro F1 is the usual metric).
The released embeddings are audio only: a second modality is read from ``visual/`` when a
user has extracted per-segment image features there; otherwise it is reported absent.
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from centralnet_ros.data.registry import DataRootError, DatasetSummary
from centralnet_ros.data.tfrecord import decode_sequence_example, iter_records, TFRecordError
import numpy as np

EMBEDDINGS = 'audioset_v1_embeddings'
CLASS_FILE = 'class_labels_indices.csv'
SPLITS = ('bal_train', 'eval', 'unbal_train')
SUBSET = ('Domestic animals, pets', 'Dog', 'Bark', 'Yip', 'Howl', 'Bow-wow', 'Growling', 'Whimper (dog)',
          'Cat', 'Purr', 'Meow', 'Hiss', 'Caterwaul')
SECONDS = 10
EMBEDDING_DIM = 128
LAYOUT = (f'<root>/{CLASS_FILE} and <root>/{EMBEDDINGS}/{{bal_train,eval}}/*.tfrecord '
          '(SequenceExample: video_id, start_time_seconds, labels; audio_embedding 128 bytes per second)')


@dataclasses.dataclass
class Segment:
    video_id: str
    start_s: float
    labels: list[int]            # indices into the 527 AudioSet classes
    embedding: np.ndarray        # (SECONDS, 128) float32 in [-2, 2], zero-padded
    seconds: int                 # valid seconds (<= SECONDS)

    @property
    def key(self) -> str:
        return f'{self.video_id}_{int(round(self.start_s * 1000))}'


def read_class_names(root: Path) -> list[str]:
    """Return the display names in class-index order, from ``class_labels_indices.csv``."""
    path = Path(root) / CLASS_FILE
    if not path.is_file():
        raise DataRootError(f'AudioSet class list {path} does not exist; expected {LAYOUT}')
    names: dict[int, str] = {}
    with open(path, newline='', encoding='utf-8') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ['index', 'mid', 'display_name']:
            raise DataRootError(f'{path}: the first line must be "index,mid,display_name", got {header}')
        for line, row in enumerate(reader, start=2):
            if len(row) < 3 or not row[0].strip().isdigit():
                raise DataRootError(f'{path} line {line}: expected index,mid,display_name, got {row}')
            names[int(row[0])] = row[2].strip()
    if sorted(names) != list(range(len(names))):
        raise DataRootError(f'{path}: class indices are not 0..{len(names) - 1}')
    return [names[i] for i in range(len(names))]


def subset_indices(class_names: list[str]) -> list[int]:
    """Return the indices of :data:`SUBSET` in the class list (every one must be there)."""
    missing = [n for n in SUBSET if n not in class_names]
    if missing:
        raise DataRootError(f'{CLASS_FILE} lacks the subset classes {missing}')
    return [class_names.index(n) for n in SUBSET]


def dequantize(raw: bytes) -> np.ndarray:
    if len(raw) != EMBEDDING_DIM:
        raise TFRecordError(f'an audio_embedding frame has {len(raw)} bytes, expected {EMBEDDING_DIM}')
    return np.frombuffer(raw, np.uint8).astype(np.float32) * (4.0 / 255.0) - 2.0


def decode_segment(payload: bytes) -> Segment:
    ex = decode_sequence_example(payload)
    try:
        video_id = ex.context['video_id'][0].decode('utf-8')
        start = float(ex.context['start_time_seconds'][0])
        labels = [int(i) for i in ex.context['labels']]
    except (KeyError, IndexError) as exc:
        raise TFRecordError(f'a SequenceExample lacks the context field {exc}') from None
    frames = [dequantize(f[0]) for f in ex.feature_lists.get('audio_embedding', []) if len(f)]
    emb = np.zeros((SECONDS, EMBEDDING_DIM), np.float32)
    n = min(len(frames), SECONDS)
    if n:
        emb[:n] = np.stack(frames[:n])
    return Segment(video_id, start, labels, emb, n)


def iter_segments(root: Path, split: str):
    folder = Path(root) / EMBEDDINGS / split
    files = sorted(folder.glob('*.tfrecord'))
    if not files:
        raise DataRootError(f'no *.tfrecord under {folder}; expected {LAYOUT}')
    for path in files:
        try:
            for payload in iter_records(path):
                yield decode_segment(payload)
        except TFRecordError as exc:
            raise DataRootError(f'{path}: {exc}') from None


@dataclasses.dataclass
class SubsetSplit:
    """``inputs['audio']`` (N, 10, 128); ``inputs['visual']`` (N, D) when present; ``labels`` (N, 13) multi-hot."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    keys: list[str]
    visual_present: np.ndarray   # (N,) bool


def load_subset(root: Path, split: str) -> SubsetSplit:
    root = Path(root)
    index = subset_indices(read_class_names(root))
    pos = {c: i for i, c in enumerate(index)}
    audio, labels, keys = [], [], []
    for seg in iter_segments(root, split):
        hits = [pos[c] for c in seg.labels if c in pos]
        if not hits:
            continue
        y = np.zeros(len(SUBSET), np.float32)
        y[hits] = 1.0
        audio.append(seg.embedding)
        labels.append(y)
        keys.append(seg.key)
    inputs = {'audio': np.stack(audio) if audio else np.zeros((0, SECONDS, EMBEDDING_DIM), np.float32)}
    present = np.zeros(len(keys), bool)
    visual_dir = root / 'visual' / split
    if visual_dir.is_dir():
        vectors = []
        for i, key in enumerate(keys):
            f = visual_dir / f'{key}.npy'
            if f.is_file():
                v = np.load(f, allow_pickle=False)
                if v.ndim != 1:
                    raise DataRootError(f'{f}: a visual feature file must hold one vector, got shape {v.shape}')
                vectors.append(v.astype(np.float32))
                present[i] = True
            else:
                vectors.append(None)
        dims = {v.shape[0] for v in vectors if v is not None}
        if len(dims) > 1:
            raise DataRootError(f'{visual_dir}: visual vectors of different sizes {sorted(dims)}')
        if dims:
            d = dims.pop()
            inputs['visual'] = np.stack([v if v is not None else np.zeros(d, np.float32) for v in vectors])
    return SubsetSplit(inputs, np.stack(labels) if labels else np.zeros((0, len(SUBSET)), np.float32),
                       keys, present)


def summarize(root: Path) -> DatasetSummary:
    """Read every record of every split present; count subset segments per class."""
    root = Path(root)
    splits = [s for s in SPLITS if (root / EMBEDDINGS / s).is_dir()]
    if not splits:
        raise DataRootError(f'no split folder under {root / EMBEDDINGS}; expected {LAYOUT}')
    counts, notes = {}, []
    visual = []
    for split in splits:
        data = load_subset(root, split)
        counts[split] = {name: int(data.labels[:, i].sum()) for i, name in enumerate(SUBSET)}
        notes.append(f'{split}: {len(data.keys)} segments in the subset')
        visual.append(f'{split} {int(data.visual_present.sum())}/{len(data.keys)}')
    return DatasetSummary(name='audioset', root=str(root), counts=counts,
                          modalities={'audio': f'({SECONDS}, {EMBEDDING_DIM}) VGGish embeddings, dequantised',
                                      'visual': 'per-segment .npy: ' + ', '.join(visual)},
                          notes=notes)
