"""
The KNN transfer mapping from one modality's representation to another's.

Hsieh 2017, after Moon, Kim and Wang, "Multimodal transfer deep learning", 2015.

Built from paired reference samples (e.g. the A-T training utterances): their *source*
representations (the audio network's second-layer activations, flattened) and their
*target* representations (the video network's activations at the transfer layer).  A
query source representation is mapped to the mean of the target representations of its
``k`` nearest reference sources (Euclidean distance; ties broken by the lower reference
index), ``k = 12`` in the report.

The mapping is saved as one safetensors file (``source``, ``target`` tensors and string
metadata: ``k``, the shapes and any user notes), written atomically; loading it needs no
pickle.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

__all__ = ['KNNTransferMapping', 'FORMAT']

FORMAT = 'centralnet_ros.knn_transfer/1'


class KNNTransferMapping:
    """``transform(query (Q, D_s)) -> (Q, *target_shape)``: mean target of the k nearest sources."""

    def __init__(self, source: np.ndarray, target: np.ndarray, *, k: int = 12,
                 metadata: Mapping[str, str] | None = None):
        source = np.asarray(source, dtype=np.float32)
        target = np.asarray(target, dtype=np.float32)
        if source.ndim != 2:
            raise ValueError(f'reference source representations must be (N, D), got shape {source.shape}')
        if target.ndim < 2 or target.shape[0] != source.shape[0]:
            raise ValueError(f'reference target representations must be (N={source.shape[0]}, ...), '
                             f'got shape {target.shape}')
        if not 1 <= int(k) <= source.shape[0]:
            raise ValueError(f'k must be in [1, {source.shape[0]}] (number of reference pairs), got {k}')
        if not (np.isfinite(source).all() and np.isfinite(target).all()):
            raise ValueError('reference representations contain NaN or infinite values')
        self.source = np.ascontiguousarray(source)          # (N, D_s)
        self.target = np.ascontiguousarray(target)          # (N, *target_shape)
        self.k = int(k)
        self.metadata = {str(a): str(b) for a, b in (metadata or {}).items()}

    def __len__(self) -> int:
        return int(self.source.shape[0])

    @property
    def target_shape(self) -> tuple[int, ...]:
        return tuple(self.target.shape[1:])

    def distances(self, query: np.ndarray) -> np.ndarray:
        """Squared Euclidean distances ``(Q, N)`` from each query to each reference source."""
        q = self._check_query(query).astype(np.float64)
        r = self.source.astype(np.float64)
        d = (q * q).sum(1)[:, None] - 2.0 * q @ r.T + (r * r).sum(1)[None, :]
        return np.maximum(d, 0.0)

    def neighbours(self, query: np.ndarray) -> np.ndarray:
        """Return the indices ``(Q, k)`` of the k nearest reference sources, nearest first."""
        d = self.distances(query)
        return np.argsort(d, axis=1, kind='stable')[:, :self.k]

    def transform(self, query: np.ndarray) -> np.ndarray:
        """``(Q, D_s)`` -> ``(Q, *target_shape)``: mean target representation of the neighbours."""
        idx = self.neighbours(query)                                   # (Q, k)
        return self.target[idx].mean(axis=1, dtype=np.float64).astype(np.float32)

    def _check_query(self, query: np.ndarray) -> np.ndarray:
        query = np.asarray(query)
        if query.ndim != 2 or query.shape[1] != self.source.shape[1]:
            raise ValueError(f'query must be (Q, {self.source.shape[1]}) source representations, '
                             f'got shape {query.shape}')
        return query

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write the mapping as one safetensors file, atomically."""
        from safetensors.numpy import save

        from centralnet_ros.config import atomic_write_bytes
        meta = {'format': FORMAT, 'k': str(self.k), 'user': json.dumps(self.metadata, sort_keys=True)}
        path = Path(path)
        atomic_write_bytes(path, save({'source': self.source, 'target': self.target}, metadata=meta))
        return path

    @classmethod
    def load(cls, path: str | Path) -> 'KNNTransferMapping':
        """Read a file written by :meth:`save`; errors name the file and what is wrong."""
        from safetensors import safe_open
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'{path}: no KNN transfer mapping file')
        try:
            with safe_open(str(path), framework='numpy') as f:
                meta = f.metadata() or {}
                keys = set(f.keys())
                if meta.get('format') != FORMAT:
                    raise ValueError(f'{path}: not a KNN transfer mapping (format {meta.get("format")!r}, '
                                     f'expected {FORMAT!r})')
                if keys != {'source', 'target'}:
                    raise ValueError(f'{path}: expected tensors source and target, found {sorted(keys)}')
                source, target = f.get_tensor('source'), f.get_tensor('target')
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise ValueError(f'{path}: unreadable safetensors file ({exc})') from None
        try:
            k = int(meta['k'])
            user = json.loads(meta.get('user', '{}'))
        except (KeyError, ValueError) as exc:
            raise ValueError(f'{path}: bad KNN mapping metadata ({exc})') from None
        try:
            return cls(source, target, k=k, metadata=user)
        except ValueError as exc:
            raise ValueError(f'{path}: {exc}') from None
