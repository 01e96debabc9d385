"""
MM-IMDb (Arevalo et al. 2017), read from the authors' Fuel/HDF5 file ``multimodal_imdb.hdf5``.

Layout under the dataset folder (``<data root>/mmimdb``)::

    multimodal_imdb.hdf5     datasets (one row per movie, rows ordered train | dev | test):
        vgg_features (N, 4096) float32   VGG-16 fc7 features of the poster
        features     (N, 300)  float32   mean word2vec (GoogleNews) of the plot words
        genres       (N, 23)   int32     multi-hot genres; attribute ``target_names`` (JSON list)
        imdb_ids     (N,)      S7        (optional)
        images, sequences, three_grams, word_grams (not read here)
    file attribute ``split``: Fuel's split array (fields split, source, start, stop, ...)

The split boundaries come from the file's own ``split`` attribute; a file without it is
split at the published boundaries (15,552 train, 2,608 dev, 7,799 test = 25,959 movies).
Modalities are named ``poster`` (the VGG features) and ``plot`` (the word2vec mean).
Reading needs ``h5py`` (the ``datasets`` extra: ``pip install centralnet_ros[datasets]``).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from centralnet_ros.data.registry import DataRootError, DatasetSummary
import numpy as np

FILE_NAME = 'multimodal_imdb.hdf5'
LAYOUT = (f'<root>/{FILE_NAME}: HDF5 with vgg_features (N, 4096), features (N, 300), genres (N, 23) '
          'and a Fuel "split" attribute (or rows ordered 15552 train | 2608 dev | 7799 test)')
SOURCES = {'poster': ('vgg_features', 4096), 'plot': ('features', 300)}
NUM_GENRES = 23
SPLITS = ('train', 'dev', 'test')
PUBLISHED_BOUNDS = {'train': (0, 15552), 'dev': (15552, 18160), 'test': (18160, 25959)}


@dataclasses.dataclass
class MMIMDbSplit:
    """One split: ``inputs['poster']`` (N, 4096), ``inputs['plot']`` (N, 300), ``labels`` (N, 23) multi-hot."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is in the test extra
        raise ImportError('reading MM-IMDb needs h5py: pip install "centralnet_ros[datasets]" '
                          '(or pip install h5py)') from exc
    return h5py


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def split_bounds(attr, n_rows: int) -> dict[str, tuple[int, int]]:
    """Return ``{split: (start, stop)}`` from a Fuel split array (or the published bounds when ``attr`` is None)."""
    if attr is None:
        bounds = dict(PUBLISHED_BOUNDS)
    else:
        bounds = {}
        for row in np.asarray(attr):
            split, source = _text(row['split']), _text(row['source'])
            if source == 'genres':
                bounds[split] = (int(row['start']), int(row['stop']))
        missing = [s for s in SPLITS if s not in bounds]
        if missing:
            raise DataRootError(f'the "split" attribute has no genres rows for split(s) {missing}; expected {SPLITS}')
    for split, (start, stop) in bounds.items():
        if not 0 <= start <= stop <= n_rows:
            raise DataRootError(f"split {split!r} rows {start}:{stop} fall outside the file's {n_rows} rows")
    return bounds


def _open(root: Path):
    path = Path(root) / FILE_NAME
    if not path.is_file():
        raise DataRootError(f'MM-IMDb file {path} does not exist; expected {LAYOUT}')
    h5py = _h5py()
    try:
        return h5py.File(path, 'r')
    except OSError as exc:
        raise DataRootError(f'{path} is not a readable HDF5 file ({exc}); expected {LAYOUT}') from exc


def _check_shapes(f, path: str) -> int:
    needed = {'genres': NUM_GENRES, **{name: dim for name, dim in SOURCES.values()}}
    n = None
    for name, dim in needed.items():
        if name not in f:
            raise DataRootError(f'{path}: dataset {name!r} is missing; expected {LAYOUT}')
        shape = f[name].shape
        if len(shape) != 2 or shape[1] != dim:
            raise DataRootError(f'{path}: dataset {name!r} has shape {shape}, expected (N, {dim})')
        if n is not None and shape[0] != n:
            raise DataRootError(f'{path}: dataset {name!r} has {shape[0]} rows, the others {n}')
        n = shape[0]
    return int(n)


def genre_names(root: Path) -> list[str]:
    """Return the 23 genre names (the ``target_names`` attribute of ``genres``)."""
    with _open(root) as f:
        raw = f['genres'].attrs.get('target_names')
        if raw is None:
            return [f'genre_{i}' for i in range(NUM_GENRES)]
        names = json.loads(_text(raw))
    if len(names) != NUM_GENRES:
        raise DataRootError(f'genres.target_names lists {len(names)} names, expected {NUM_GENRES}')
    return [str(n) for n in names]


def load_splits(root: Path) -> dict[str, MMIMDbSplit]:
    """Read the three splits into memory (about 420 MB of float32 for the full file)."""
    with _open(root) as f:
        n = _check_shapes(f, str(Path(root) / FILE_NAME))
        bounds = split_bounds(f.attrs.get('split'), n)
        out = {}
        for split in SPLITS:
            start, stop = bounds[split]
            inputs = {m: np.asarray(f[src][start:stop], np.float32) for m, (src, _) in SOURCES.items()}
            labels = np.asarray(f['genres'][start:stop], np.float32)
            if not np.isin(labels, (0, 1)).all():
                raise DataRootError(f'genres rows {start}:{stop} hold values other than 0 and 1 (multi-hot expected)')
            for m, x in inputs.items():
                if not np.isfinite(x).all():
                    raise DataRootError(f'{SOURCES[m][0]} rows {start}:{stop} hold NaN or Inf values')
            out[split] = MMIMDbSplit(inputs, labels)
    return out


def summarize(root: Path) -> DatasetSummary:
    """Read every row and count movies per split and genre (a movie counts once per genre it has)."""
    splits = load_splits(root)
    names = genre_names(root)
    counts = {s: {names[g]: int(sp.labels[:, g].sum()) for g in range(NUM_GENRES)} for s, sp in splits.items()}
    notes = [f'{s}: {len(sp.labels)} movies, {sp.labels.sum(1).mean():.2f} genres per movie'
             for s, sp in splits.items()]
    return DatasetSummary(name='mmimdb', root=str(root), counts=counts,
                          modalities={m: f'({dim},) float32 from {src}' for m, (src, dim) in SOURCES.items()},
                          notes=notes)
