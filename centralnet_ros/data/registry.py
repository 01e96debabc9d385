"""
Dataset registry used by ``centralnet data check`` (and by training presets).

A dataset module provides ``summarize(root: Path) -> DatasetSummary``: it reads every
file (so a truncated download is found) and counts samples per split and class.
Modules are imported lazily by name.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Callable


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    """
    One dataset: where its reader lives, where it sits under a data root, and its terms.

    ``markers`` are paths under the dataset's folder whose presence says the dataset is
    there (what tests and ``centralnet data check`` look for); the expected layout is the
    reader module's ``LAYOUT``.
    """

    module: str
    folder: str
    description: str
    terms: str
    markers: tuple[str, ...] = ()


DATASETS: dict[str, DatasetEntry] = {
    'mnist': DatasetEntry('centralnet_ros.data.mnist', 'mnist', 'MNIST IDX files (image)',
                          'MNIST (LeCun, Cortes, Burges): commonly distributed under CC BY-SA 3.0',
                          ('t10k-labels-idx1-ubyte*',)),
    'fsdd': DatasetEntry('centralnet_ros.data.fsdd', 'fsdd', 'Free Spoken Digit Dataset wav files (audio)',
                         'Free Spoken Digit Dataset (Jackson et al.): CC BY-SA 4.0', ('recordings',)),
    'avmnist': DatasetEntry('centralnet_ros.data.avmnist', '.', 'AV-MNIST built from mnist/ and fsdd/',
                            'built from MNIST (CC BY-SA 3.0) and the Free Spoken Digit Dataset (CC BY-SA 4.0)',
                            ('mnist/t10k-labels-idx1-ubyte*', 'fsdd/recordings')),
    'avletters': DatasetEntry('centralnet_ros.data.avletters', 'avletters', 'AVLetters lips (.mat v4) + HTK MFCC',
                              'AVLetters (Matthews et al. 2002): research use only, under the terms of its '
                              'distributors (University of East Anglia / University of Surrey)',
                              ('Lips', 'Audio/mfcc/Clean')),
    'msrc12': DatasetEntry('centralnet_ros.data.msrc12', 'msrc12', 'MSRC-12 Kinect skeleton gestures',
                           'MSRC-12 Kinect gesture data set (Fothergill et al. 2012): Microsoft Research data '
                           'licence, non-commercial research use only', ('data',)),
    'emodb': DatasetEntry('centralnet_ros.data.emodb', 'emodb', 'Berlin Database of Emotional Speech',
                          'Berlin Database of Emotional Speech (Burkhardt et al. 2005): free for research use',
                          ('wav',)),
    'chalearn': DatasetEntry('centralnet_ros.data.chalearn', 'chalearn', 'Montalbano / ChaLearn 2013-2014 gestures',
                             'ChaLearn LAP Montalbano gesture data (Escalera et al. 2013-2014): research use under '
                             'the ChaLearn challenge terms'),
    'mmimdb': DatasetEntry('centralnet_ros.data.mmimdb', 'mmimdb',
                           'MM-IMDb multimodal_imdb.hdf5 (poster VGG-16 + plot word2vec, 23 genres)',
                           'MM-IMDb (Arevalo et al. 2017): movie data from IMDb, research use; '
                           "check IMDb's conditions of use", ('multimodal_imdb.hdf5',)),
    'audioset': DatasetEntry('centralnet_ros.data.audioset', 'audioset',
                             'AudioSet VGGish embeddings (TFRecord), "Domestic animals, pets" subset',
                             'AudioSet (Gemmeke et al. 2017): labels and embeddings CC BY 4.0',
                             ('class_labels_indices.csv', 'audioset_v1_embeddings')),
    'afew': DatasetEntry('centralnet_ros.data.afew', 'afew', 'AFEW emotion clips (Train_AFEW / Val_AFEW .avi)',
                         'AFEW (Dhall et al.): movie excerpts under the EmotiW end-user licence agreement, '
                         'non-commercial research only', ('Train_AFEW',)),
    'senz3d': DatasetEntry('centralnet_ros.data.senz3d', 'senz3d',
                           'Creative Senz3D gestures (colour, depth, confidence PNG)',
                           'Creative Senz3D (Memo, Minto & Zanuttigh 2015): research use, cite the authors'),
    'asl_fingerspelling': DatasetEntry('centralnet_ros.data.asl_fingerspelling', 'asl_fingerspelling',
                                       'ASL Finger Spelling (colour + depth PNG per subject and letter)',
                                       'ASL Finger Spelling (Pugeault & Bowden 2011): research use, cite the authors'),
}


class DataRootError(FileNotFoundError):
    """The data root is missing or not laid out as the dataset expects."""


@dataclasses.dataclass
class DatasetSummary:
    """What ``centralnet data check`` prints: counts per split and class."""

    name: str
    root: str
    counts: dict[str, dict[str, int]]          # split -> class name -> samples
    modalities: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> shape/info
    notes: list[str] = dataclasses.field(default_factory=list)

    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())


def summarizer(name: str) -> Callable[[Path], DatasetSummary]:
    if name not in DATASETS:
        raise KeyError(f'unknown dataset {name!r}; known: {", ".join(sorted(DATASETS))}')
    return importlib.import_module(DATASETS[name].module).summarize


def default_root(name: str, data_root: Path) -> Path:
    """Return the dataset's own folder under a data root (``<root>/msrc12`` ...)."""
    return data_root / DATASETS[name].folder


def layout(name: str) -> str:
    """Return the expected layout of a dataset's folder (its reader's ``LAYOUT``)."""
    return str(getattr(importlib.import_module(DATASETS[name].module), 'LAYOUT', ''))


def missing_markers(name: str, data_root: Path) -> list[Path]:
    """
    Return the paths that show a dataset is present under ``data_root`` but are missing ([] when it is there).

    A marker may be a glob pattern (``t10k-labels-idx1-ubyte*`` matches the file with or without ``.gz``).
    """
    folder = default_root(name, data_root)
    if not folder.is_dir():
        return [folder]
    return [folder / m for m in DATASETS[name].markers if not any(folder.glob(m))]


def training_terms(names: str) -> str:
    """Return the terms of every dataset in ``names`` (comma-separated), joined: a model is bound by all of them."""
    return '; '.join(terms(n.strip()) for n in names.split(',') if n.strip())


def terms(name: str) -> str:
    """Return the terms under which a dataset (and anything derived from it) may be used."""
    if name not in DATASETS:
        raise KeyError(f'unknown dataset {name!r}; known: {", ".join(sorted(DATASETS))}')
    return DATASETS[name].terms
