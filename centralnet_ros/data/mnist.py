"""
MNIST in its own IDX format (LeCun et al.), gzip-compressed or raw.

Layout under the dataset folder (``<data root>/mnist``)::

    train-images-idx3-ubyte(.gz)   60000 x 28 x 28 uint8
    train-labels-idx1-ubyte(.gz)   60000 uint8
    t10k-images-idx3-ubyte(.gz)    10000 x 28 x 28 uint8
    t10k-labels-idx1-ubyte(.gz)    10000 uint8

An IDX file is a big-endian header: two zero bytes, a type code (0x08 = uint8), the
number of dimensions, then one uint32 per dimension; the data follow.  The reader
checks the magic number against what the file should hold (2051 = uint8 x 3 dims for
images, 2049 = uint8 x 1 dim for labels), takes the dims from the header and refuses a
file whose data are shorter or longer than the header says.
"""
from __future__ import annotations

from pathlib import Path
import zlib

from centralnet_ros.data.registry import DataRootError, DatasetSummary
import numpy as np

# split -> (images file, labels file), without the optional '.gz'
FILES: dict[str, tuple[str, str]] = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}
IMAGES_MAGIC = 0x00000803   # 2051: uint8, 3 dims
LABELS_MAGIC = 0x00000801   # 2049: uint8, 1 dim
LAYOUT = ('<root>/train-images-idx3-ubyte.gz, <root>/train-labels-idx1-ubyte.gz, '
          '<root>/t10k-images-idx3-ubyte.gz, <root>/t10k-labels-idx1-ubyte.gz (or the same names without .gz)')

_IDX_DTYPES = {0x08: np.dtype('u1'), 0x09: np.dtype('i1'), 0x0B: np.dtype('>i2'),
               0x0C: np.dtype('>i4'), 0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


def _read_bytes(path: Path) -> tuple[bytes, bool]:
    """
    Read the file's (decompressed) bytes, and whether a gzip stream ended early.

    A truncated ``.gz`` is decompressed as far as it goes, so the caller can report
    how many bytes the header promised against how many arrived.
    """
    data = path.read_bytes()
    if path.suffix != '.gz':
        return data, False
    out, rest = [], data
    while rest:
        d = zlib.decompressobj(wbits=31)                 # gzip wrapper
        try:
            out.append(d.decompress(rest))
            out.append(d.flush())
        except zlib.error as exc:
            raise ValueError(f'{path}: corrupt gzip data ({exc}); download the file again') from exc
        if not d.eof:
            return b''.join(out), True
        rest = d.unused_data                             # a further gzip member, if any
    return b''.join(out), False


def read_idx(path: str | Path, *, expected_magic: int | None = None) -> np.ndarray:
    """
    Read one IDX file (``.gz`` or raw) into a numpy array shaped as its header says.

    Raises ``ValueError`` naming the file when the magic number is wrong, or the data
    are shorter / longer than the header's dims (expected vs actual byte counts).
    """
    path = Path(path)
    raw, gzip_truncated = _read_bytes(path)
    cut = ' (the gzip stream also ends early)' if gzip_truncated else ''
    if len(raw) < 4:
        raise ValueError(f'{path}: {len(raw)} bytes, too short for an IDX header (at least 4 bytes expected){cut}')
    magic = int.from_bytes(raw[:4], 'big')
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(f'{path}: not an IDX file (magic number 0x{magic:08x}; expected two zero bytes, '
                         f'a type code in {sorted(_IDX_DTYPES)} and a dimension count)')
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f'{path}: IDX magic number {magic} (0x{magic:08x}), expected {expected_magic} '
                         f'(0x{expected_magic:08x})')
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f'{path}: truncated IDX header: {len(raw)} bytes, expected {header} for {ndim} dims{cut}')
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], 'big') for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        kind = 'truncated' if len(raw) < expected else 'has trailing bytes'
        raise ValueError(f'{path}: IDX file {kind}: header says dims {dims} of {dtype.name}, so '
                         f'{expected} bytes expected (decompressed), but it holds {len(raw)} bytes{cut}')
    if gzip_truncated:
        raise ValueError(f'{path}: the gzip stream ends early (truncated download) although {len(raw)} '
                         f'bytes were recovered; expected a complete stream')
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder('='))


def _find(root: Path, name: str) -> Path:
    for candidate in (root / f'{name}.gz', root / name):
        if candidate.is_file():
            return candidate
    raise DataRootError(f'MNIST file {name}(.gz) not found in {root}; expected layout: {LAYOUT}')


def load_mnist(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 28, 28) uint8, labels (N,) int64)`` of ``split`` ('train' or 'test')."""
    root = Path(root)
    if split not in FILES:
        raise ValueError(f'MNIST split must be one of {sorted(FILES)}, got {split!r}')
    if not root.is_dir():
        raise DataRootError(f'MNIST folder {root} does not exist; expected layout: {LAYOUT}')
    img_path, lbl_path = (_find(root, name) for name in FILES[split])
    images = read_idx(img_path, expected_magic=IMAGES_MAGIC)
    labels = read_idx(lbl_path, expected_magic=LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f'{img_path} holds {images.shape[0]} images but {lbl_path} holds '
                         f'{labels.shape[0]} labels; they must match')
    if images.shape[1:] != (28, 28):
        raise ValueError(f'{img_path}: images of shape {images.shape[1:]}, expected (28, 28)')
    if labels.size and labels.max() > 9:
        raise ValueError(f'{lbl_path}: label {int(labels.max())} out of range 0-9')
    return images, labels.astype(np.int64)


def summarize(root: Path) -> DatasetSummary:
    """Read all four files and count images per split and digit."""
    counts: dict[str, dict[str, int]] = {}
    for split in FILES:
        images, labels = load_mnist(root, split)
        counts[split] = {str(d): int(n) for d, n in enumerate(np.bincount(labels, minlength=10))}
    return DatasetSummary(name='mnist', root=str(root), counts=counts,
                          modalities={'image': '(28, 28) uint8 grayscale'},
                          notes=['official split: 60000 train (train-*), 10000 test (t10k-*)'])
