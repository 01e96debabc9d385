"""
Montalbano / ChaLearn multi-modal gesture dataset (2013 and 2014 layouts).

The 20 Italian cultural gestures (ids 1-20 in :data:`GESTURES` order) were recorded
with a Kinect v1: RGB, depth, user mask and skeleton at 20 fps (and audio in 2013).
Both published layouts are read, one sample per ``SampleNNNN`` prefix, found anywhere
under the given folder, as a per-sample folder, as bare files, or inside
``SampleNNNN.zip``:

2013 (ChaLearn Multi-modal Gesture Recognition Challenge)::

    SampleNNNNN_data.mat    Matlab v5 struct ``Video``: NumFrames, FrameRate, MaxDepth,
                            Frames(i).Skeleton.{WorldPosition 20x3, WorldRotation 20x4,
                            JointType 20x1 cell, PixelPosition 20x2},
                            Labels(k).{Name, Begin, End}
    SampleNNNNN_audio.wav, _color.mp4, _depth.mp4, _user.mp4

2014 (ChaLearn Looking at People, track 3)::

    SampleNNNN_skeleton.csv  one row per frame: 20 joints x 9 values (world position 3,
                             world rotation 4, pixel position 2), Kinect v1 joint order
    SampleNNNN_labels.csv    rows: gesture id, start frame, end frame
    SampleNNNN_data.csv      one row: frames, fps, max depth
    SampleNNNN_color.mp4, _depth.mp4, _user.mp4 (2014 has no audio; read if present)

Frame numbers in labels are 1-based and inclusive.  A depth video stores
``depth / MaxDepth * 255`` in its grey levels, so depth (mm) = grey / 255 * MaxDepth.
A folder of bare ``_data.mat`` / ``_skeleton.csv`` files (no videos) gives skeleton
and labels only; the other modalities are reported absent.

:func:`extract_instances` returns the four modalities of the paper per gesture
instance: skeleton descriptors (:func:`centralnet_ros.features.skeleton.skeleton_feature_map`),
log-mel audio features (:func:`centralnet_ros.features.audio.log_mel_spectrogram`),
and fixed-size left / right hand crops from the RGB and depth videos centred on the
skeleton's hand pixel positions (clipped at the image borders).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
from pathlib import Path
import re
import shutil
import tempfile
from typing import Iterator
import zipfile

from centralnet_ros.data.registry import DataRootError, DatasetSummary
from centralnet_ros.data.wav import read_pcm_wav
from centralnet_ros.features import skeleton as skel
from centralnet_ros.features.audio import log_mel_spectrogram, resample_audio
import numpy as np

GESTURES: tuple[str, ...] = (
    'vattene', 'vieniqui', 'perfetto', 'furbo', 'cheduepalle', 'chevuoi', 'daccordo', 'seipazzo',
    'combinato', 'freganiente', 'ok', 'cosatifarei', 'basta', 'prendere', 'noncenepiu', 'fame',
    'tantotempo', 'buonissimo', 'messidaccordo', 'sonostufo',
)
CLASS_NAMES = GESTURES                    # label = gesture id - 1
NUM_JOINTS = skel.NUM_KINECT_V1_JOINTS
MEDIA = ('audio', 'color', 'depth', 'user')
MEDIA_SUFFIX = {'audio': '_audio.wav', 'color': '_color.mp4', 'depth': '_depth.mp4', 'user': '_user.mp4'}
MODALITIES = ('skeleton', 'audio', 'color_hands', 'depth_hands')
LAYOUT = ('a folder holding, per sample (in a SampleNNNN folder, as bare files or in SampleNNNN.zip), '
          'either SampleNNNNN_data.mat (2013) or SampleNNNN_skeleton.csv + _labels.csv + _data.csv (2014), '
          'optionally with _audio.wav, _color.mp4, _depth.mp4, _user.mp4')

_MAT = re.compile(r'^(Sample\d+)_data\.mat$', re.IGNORECASE)
_SKEL = re.compile(r'^(Sample\d+)_skeleton\.csv$', re.IGNORECASE)
_ZIP = re.compile(r'^(Sample\d+)\.zip$', re.IGNORECASE)
_CSV_WIDTH = NUM_JOINTS * 9


# --------------------------------------------------------------------------- samples

@dataclasses.dataclass
class ChalearnSample:
    """One recording's skeleton, labels and where its media files are."""

    sample_id: str                 # 'Sample00001' (2013) / 'Sample0001' (2014)
    layout: str                    # '2013' or '2014'
    location: Path                 # the _data.mat / _skeleton.csv, or the .zip holding it
    num_frames: int
    frame_rate: float              # frames per second
    max_depth: float               # depth (mm) of grey level 255 in the depth video
    world_position: np.ndarray     # (T, 20, 3) float32, metres
    world_rotation: np.ndarray     # (T, 20, 4) float32, quaternions
    pixel_position: np.ndarray     # (T, 20, 2) float32, (x, y) pixels of the colour image
    labels: np.ndarray             # (N, 3) int64: gesture id 1-20, begin frame, end frame (1-based, inclusive)
    media: dict[str, str | None]   # 'audio' / 'color' / 'depth' / 'user' -> file path or zip member, None if absent
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def tracked(self) -> np.ndarray:
        """(T,) bool: the frame has a skeleton (world positions not all zero)."""
        return np.any(self.world_position != 0, axis=(1, 2))

    def has(self, medium: str) -> bool:
        return self.media.get(medium) is not None


@dataclasses.dataclass(frozen=True)
class SampleRef:
    """Where a sample is: its main file (or zip) and its layout."""

    sample_id: str
    layout: str          # '2013', '2014' or 'zip' (layout read from the members)
    path: Path


def find_samples(root: str | Path) -> list[SampleRef]:
    """
    Every sample under ``root`` (searched recursively), sorted by sample id then path.

    A ``SampleNNNN.zip`` whose sample is also present unpacked beside it is skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataRootError(f'ChaLearn folder {root} does not exist; expected {LAYOUT}')
    refs, zips = [], []
    for path in sorted(root.rglob('*')):
        if not path.is_file():
            continue
        for pattern, layout in ((_MAT, '2013'), (_SKEL, '2014'), (_ZIP, 'zip')):
            m = pattern.match(path.name)
            if m:
                (zips if layout == 'zip' else refs).append(SampleRef(_canonical_id(m.group(1)), layout, path))
                break
    unpacked = {(r.sample_id, r.path.parent.parent) for r in refs} | {(r.sample_id, r.path.parent) for r in refs}
    refs += [z for z in zips if (z.sample_id, z.path.parent) not in unpacked]
    if not refs:
        raise DataRootError(f'no ChaLearn sample in {root}; expected {LAYOUT}')
    return sorted(refs, key=lambda r: (r.sample_id, str(r.path)))


def _canonical_id(text: str) -> str:
    return 'Sample' + text[len('Sample'):]


class _Source:
    """Files of one sample, in a folder or in a zip archive."""

    def __init__(self, ref: SampleRef):
        self.ref = ref
        self.zip: zipfile.ZipFile | None = None
        self.members: dict[str, str] = {}
        if ref.layout == 'zip':
            try:
                self.zip = zipfile.ZipFile(ref.path)
            except zipfile.BadZipFile as exc:
                raise ValueError(f'{ref.path}: not a readable zip archive ({exc})') from exc
            self.members = {Path(n).name.lower(): n for n in self.zip.namelist() if not n.endswith('/')}

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()

    def find(self, suffix: str) -> str | None:
        name = f'{self.ref.sample_id}{suffix}'
        if self.zip is not None:
            return self.members.get(name.lower())
        folder = self.ref.path.parent
        for cand in folder.iterdir():
            if cand.name.lower() == name.lower() and cand.is_file():
                return str(cand)
        return None

    def describe(self, item: str) -> str:
        return f'{self.ref.path}:{item}' if self.zip is not None else item

    def read_bytes(self, item: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(item)
        return Path(item).read_bytes()


def read_sample(ref: SampleRef | str | Path) -> ChalearnSample:
    """
    Read a sample's skeleton, labels and metadata, and note which media files it has.

    ``ref`` is a :class:`SampleRef` or the path of a ``_data.mat``, ``_skeleton.csv``
    or ``SampleNNNN.zip``.
    """
    if not isinstance(ref, SampleRef):
        path = Path(ref)
        for pattern, layout in ((_MAT, '2013'), (_SKEL, '2014'), (_ZIP, 'zip')):
            m = pattern.match(path.name)
            if m:
                ref = SampleRef(_canonical_id(m.group(1)), layout, path)
                break
        else:
            raise ValueError(f'{path}: not a ChaLearn sample file; expected SampleNNNNN_data.mat, '
                             'SampleNNNN_skeleton.csv or SampleNNNN.zip')
    src = _Source(ref)
    try:
        layout = ref.layout
        if layout == 'zip':
            if src.find('_data.mat'):
                layout = '2013'
            elif src.find('_skeleton.csv'):
                layout = '2014'
            else:
                raise ValueError(f'{ref.path}: the archive holds neither {ref.sample_id}_data.mat nor '
                                 f'{ref.sample_id}_skeleton.csv')
        sample = _read_2013(src) if layout == '2013' else _read_2014(src)
        sample.media = {m: src.find(MEDIA_SUFFIX[m]) for m in MEDIA}
        return sample
    finally:
        src.close()


def _check_labels(labels: np.ndarray, num_frames: int, where: str) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64).reshape(-1, 3)
    for gid, begin, end in labels:
        if not 1 <= gid <= len(GESTURES):
            raise ValueError(f'{where}: gesture id {gid} outside 1-{len(GESTURES)}')
        if not 1 <= begin <= end <= num_frames:
            raise ValueError(f'{where}: gesture {GESTURES[gid - 1]} frames {begin}-{end} not within 1-{num_frames} '
                             '(1-based, begin <= end)')
    return labels


def _field(obj, name: str, where: str):
    try:
        return getattr(obj, name)
    except AttributeError:
        raise ValueError(f'{where}: the Video struct has no field {name!r}; expected the ChaLearn 2013 '
                         'struct (NumFrames, FrameRate, MaxDepth, Frames, Labels)') from None


def _scalar(value, name: str, where: str) -> float:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size != 1 or not np.isfinite(arr[0]):
        raise ValueError(f'{where}: Video.{name} must be one number, got {value!r}')
    return float(arr[0])


def _read_2013(src: _Source) -> ChalearnSample:
    from scipy.io import loadmat          # scipy.io is only needed for this layout
    item = src.find('_data.mat')
    where = src.describe(item)
    try:
        mat = loadmat(io.BytesIO(src.read_bytes(item)), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for a bad file
        raise ValueError(f'{where}: not a readable Matlab v5 file ({type(exc).__name__}: {exc})') from exc
    if 'Video' not in mat:
        raise ValueError(f'{where}: no variable "Video"; expected the ChaLearn 2013 struct '
                         '(NumFrames, FrameRate, MaxDepth, Frames, Labels)')
    video = mat['Video']
    num_frames = int(_scalar(_field(video, 'NumFrames', where), 'NumFrames', where))
    frame_rate = _scalar(_field(video, 'FrameRate', where), 'FrameRate', where)
    max_depth = _scalar(_field(video, 'MaxDepth', where), 'MaxDepth', where)
    frames = np.atleast_1d(_field(video, 'Frames', where))
    T = len(frames)
    world = np.zeros((T, NUM_JOINTS, 3), np.float32)
    rot = np.zeros((T, NUM_JOINTS, 4), np.float32)
    pix = np.zeros((T, NUM_JOINTS, 2), np.float32)
    for i, frame in enumerate(frames):
        sk = getattr(frame, 'Skeleton', None)
        if sk is None:
            raise ValueError(f'{where}: Video.Frames({i + 1}) has no Skeleton field')
        for arr, name, width in ((world, 'WorldPosition', 3), (rot, 'WorldRotation', 4), (pix, 'PixelPosition', 2)):
            value = np.asarray(getattr(sk, name, np.zeros(0)), dtype=np.float64)
            if value.size == 0:          # frame without a tracked skeleton
                continue
            if value.shape != (NUM_JOINTS, width):
                raise ValueError(f'{where}: Video.Frames({i + 1}).Skeleton.{name} has shape {value.shape}, '
                                 f'expected ({NUM_JOINTS}, {width})')
            arr[i] = value
    warnings = []
    if T != num_frames:
        warnings.append(f'{where}: Video.NumFrames is {num_frames} but Video.Frames has {T} entries')
    rows = []
    for k, lab in enumerate(np.atleast_1d(_field(video, 'Labels', where))):
        name = str(getattr(lab, 'Name', '')).strip().lower()
        if name not in GESTURES:
            raise ValueError(f'{where}: Video.Labels({k + 1}).Name {name!r} is not one of the 20 gestures '
                             f'({", ".join(GESTURES)})')
        rows.append((GESTURES.index(name) + 1, int(_scalar(getattr(lab, 'Begin', None), 'Labels.Begin', where)),
                     int(_scalar(getattr(lab, 'End', None), 'Labels.End', where))))
    labels = _check_labels(np.asarray(rows, np.int64).reshape(-1, 3), T, where)
    return ChalearnSample(sample_id=src.ref.sample_id, layout='2013', location=src.ref.path, num_frames=T,
                          frame_rate=frame_rate, max_depth=max_depth, world_position=world, world_rotation=rot,
                          pixel_position=pix, labels=labels, media={}, warnings=warnings)


def _read_csv_rows(src: _Source, item: str) -> list[list[str]]:
    where = src.describe(item)
    try:
        text = src.read_bytes(item).decode('ascii')
    except UnicodeDecodeError as exc:
        raise ValueError(f'{where}: not an ASCII CSV file ({exc})') from exc
    return [row for row in csv.reader(io.StringIO(text)) if row and any(c.strip() for c in row)]


def _numbers(row: list[str], where: str, line: int) -> list[float]:
    try:
        return [float(c) for c in row]
    except ValueError:
        raise ValueError(f'{where}, line {line}: non-numeric value in {row[:6]}...') from None


def _read_2014(src: _Source) -> ChalearnSample:
    sid = src.ref.sample_id
    skel_item = src.find('_skeleton.csv')
    data_item = src.find('_data.csv')
    if data_item is None:
        raise ValueError(f'{src.describe(skel_item)}: {sid}_data.csv (frames, fps, max depth) is missing beside it')
    where = src.describe(data_item)
    rows = _read_csv_rows(src, data_item)
    if len(rows) != 1 or len(rows[0]) != 3:
        raise ValueError(f'{where}: expected one row "frames,fps,max depth", got {rows[:3]}')
    num_frames, frame_rate, max_depth = _numbers(rows[0], where, 1)
    where = src.describe(skel_item)
    rows = _read_csv_rows(src, skel_item)
    values = []
    for line, row in enumerate(rows, start=1):
        if len(row) != _CSV_WIDTH:
            raise ValueError(f'{where}, line {line}: {len(row)} values, expected {_CSV_WIDTH} '
                             f'({NUM_JOINTS} joints x (world position 3, world rotation 4, pixel position 2))')
        values.append(_numbers(row, where, line))
    if not values:
        raise ValueError(f'{where}: no skeleton rows')
    arr = np.asarray(values, np.float64).reshape(-1, NUM_JOINTS, 9)
    warnings = []
    if len(arr) != int(num_frames):
        warnings.append(f'{where}: {len(arr)} skeleton rows but {sid}_data.csv says {int(num_frames)} frames')
    labels_item = src.find('_labels.csv')
    if labels_item is None:
        labels = np.zeros((0, 3), np.int64)
        warnings.append(f'{sid}: no {sid}_labels.csv (an unlabelled test sample)')
    else:
        lwhere = src.describe(labels_item)
        rows = _read_csv_rows(src, labels_item)
        lab = []
        for line, row in enumerate(rows, start=1):
            if len(row) != 3:
                raise ValueError(f'{lwhere}, line {line}: expected "gesture id,start frame,end frame", got {row}')
            nums = _numbers(row, lwhere, line)
            if any(n != int(n) for n in nums):
                raise ValueError(f'{lwhere}, line {line}: gesture id and frames must be integers, got {row}')
            lab.append([int(n) for n in nums])
        labels = _check_labels(np.asarray(lab, np.int64).reshape(-1, 3), len(arr), lwhere)
    return ChalearnSample(sample_id=sid, layout='2014', location=src.ref.path, num_frames=len(arr),
                          frame_rate=float(frame_rate), max_depth=float(max_depth),
                          world_position=arr[..., 0:3].astype(np.float32),
                          world_rotation=arr[..., 3:7].astype(np.float32),
                          pixel_position=arr[..., 7:9].astype(np.float32), labels=labels, media={},
                          warnings=warnings)


# --------------------------------------------------------------------------- media

@contextlib.contextmanager
def _media_file(sample: ChalearnSample, medium: str) -> Iterator[Path]:
    """Yield a real file path for a medium (extracted to a temporary folder if it sits in a zip)."""
    item = sample.media.get(medium)
    if item is None:
        raise ValueError(f'{sample.sample_id}: no {medium} file')
    if sample.location.suffix.lower() != '.zip':
        yield Path(item)
        return
    tmp = tempfile.mkdtemp(prefix='chalearn_')
    try:
        with zipfile.ZipFile(sample.location) as zf:
            target = Path(tmp) / Path(item).name
            with zf.open(item) as fin, open(target, 'wb') as fout:
                shutil.copyfileobj(fin, fout)
        yield target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_audio(sample: ChalearnSample) -> tuple[np.ndarray, int]:
    """Read the sample's audio as float32 mono ``(time,)`` in [-1, 1) and its sample rate (channels averaged)."""
    with _media_file(sample, 'audio') as path:
        return read_pcm_wav(path, channels='average', bits=(8, 16, 32))


def read_video_frames(sample: ChalearnSample, medium: str, frames: np.ndarray) -> dict[int, np.ndarray]:
    """
    Decode the given 1-based frame numbers of a video (``'color'``, ``'depth'`` or ``'user'``).

    One sequential pass with cv2.VideoCapture (seeking in mp4 is not frame exact).
    Returns frame number -> ``(H, W, 3)`` uint8 RGB image; a video shorter than a
    requested frame is an error naming the file.
    """
    import cv2
    wanted = sorted({int(f) for f in np.asarray(frames).reshape(-1)})
    out: dict[int, np.ndarray] = {}
    if not wanted:
        return out
    with _media_file(sample, medium) as path:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise ValueError(f'{path}: OpenCV cannot open this video')
        try:
            index, pos = 0, 0
            while pos < len(wanted):
                ok, img = cap.read()
                if not ok:
                    raise ValueError(f'{path}: ends after {index} frames, frame {wanted[pos]} was needed '
                                     f'(the skeleton has {sample.num_frames})')
                index += 1
                if index == wanted[pos]:
                    out[index] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
                    pos += 1
        finally:
            cap.release()
    return out


def depth_millimetres(image: np.ndarray, *, max_depth: float) -> np.ndarray:
    """Grey level of a decoded depth frame -> depth in mm: ``(H, W[, 3])`` -> ``(H, W)`` float32."""
    img = np.asarray(image, dtype=np.float32)
    grey = img.mean(axis=-1) if img.ndim == 3 else img
    return grey / 255.0 * float(max_depth)


# --------------------------------------------------------------------------- instances

@dataclasses.dataclass
class FeatureConfig:
    """How the four modalities of a gesture instance are computed (recorded in model manifests)."""

    skeleton_frames: int = 32           # instance resampled to this many frames
    skeleton_method: str = 'linear'     # 'linear' or 'fourier'
    sample_rate: int = 16000            # audio resampled to this rate
    n_fft: int = 400                    # 25 ms
    hop_length: int = 160               # 10 ms
    n_mels: int = 40
    audio_frames: int = 32              # log-mel time axis resampled to this many frames
    crop_size: int = 64                 # hand crops of crop_size x crop_size pixels
    crop_frames: int = 4                # frames per instance, evenly spaced from begin to end


@dataclasses.dataclass
class ChalearnInstances:
    """Gesture instances with their modalities; absent modalities are zeros with ``present`` False."""

    skeleton: np.ndarray      # (N, 9, skeleton_frames, 20) float32
    audio: np.ndarray         # (N, n_mels, audio_frames) float32 log-mel
    color_hands: np.ndarray   # (N, crop_frames, 2, crop_size, crop_size, 3) uint8 RGB; hand 0 left, 1 right
    depth_hands: np.ndarray   # (N, crop_frames, 2, crop_size, crop_size) float32 millimetres
    labels: np.ndarray        # (N,) int64: gesture id - 1
    begin: np.ndarray         # (N,) int64 first frame (1-based)
    end: np.ndarray           # (N,) int64 last frame (1-based, inclusive)
    sample_ids: np.ndarray    # (N,) str
    present: dict[str, np.ndarray]   # modality -> (N,) bool
    config: FeatureConfig
    class_names: tuple[str, ...] = CLASS_NAMES

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _fill_untracked(values: np.ndarray, tracked: np.ndarray) -> np.ndarray | None:
    """Replace untracked frames by the nearest tracked frame (None if none is tracked)."""
    if not tracked.any():
        return None
    idx = np.flatnonzero(tracked)
    nearest = idx[np.clip(np.searchsorted(idx, np.arange(len(tracked))), 0, len(idx) - 1)]
    prev = idx[np.clip(np.searchsorted(idx, np.arange(len(tracked)), side='right') - 1, 0, len(idx) - 1)]
    pick = np.where(np.abs(prev - np.arange(len(tracked))) <= np.abs(nearest - np.arange(len(tracked))),
                    prev, nearest)
    return values[pick]


def extract_instances(sample: ChalearnSample, config: FeatureConfig | None = None, *,
                      modalities: tuple[str, ...] = MODALITIES) -> ChalearnInstances:
    """
    Extract the four modalities of every labelled gesture of a sample.

    ``skeleton``: world positions of frames ``begin..end`` (untracked frames replaced by
    the nearest tracked one) through :func:`skeleton_feature_map`.  ``audio``: the
    sample's audio from ``(begin - 1) / fps`` to ``end / fps`` seconds, resampled to
    ``config.sample_rate``, log-mel (``n_fft``, ``hop_length``, ``n_mels``), its time
    axis linearly resampled to ``audio_frames``.  ``color_hands`` / ``depth_hands``:
    ``crop_frames`` frames evenly spaced over the instance, cropped around the left and
    right hand pixel positions (wrist when the hand is missing).  Modalities whose file
    is absent, or that are not in ``modalities``, are zeros with ``present`` False.
    """
    cfg = config or FeatureConfig()
    unknown = set(modalities) - set(MODALITIES)
    if unknown:
        raise ValueError(f'unknown modalities {sorted(unknown)}; expected a subset of {MODALITIES}')
    n = len(sample.labels)
    S, F = cfg.crop_size, cfg.crop_frames
    out = ChalearnInstances(
        skeleton=np.zeros((n, 9, cfg.skeleton_frames, NUM_JOINTS), np.float32),
        audio=np.zeros((n, cfg.n_mels, cfg.audio_frames), np.float32),
        color_hands=np.zeros((n, F, 2, S, S, 3), np.uint8),
        depth_hands=np.zeros((n, F, 2, S, S), np.float32),
        labels=sample.labels[:, 0] - 1, begin=sample.labels[:, 1].copy(), end=sample.labels[:, 2].copy(),
        sample_ids=np.asarray([sample.sample_id] * n, dtype=np.str_),
        present={m: np.zeros(n, bool) for m in MODALITIES}, config=cfg)
    if n == 0:
        return out
    tracked = sample.tracked
    if 'skeleton' in modalities:
        for i, (_, b, e) in enumerate(sample.labels):
            seg = _fill_untracked(sample.world_position[b - 1:e], tracked[b - 1:e])
            if seg is None:
                continue
            out.skeleton[i] = skel.skeleton_feature_map(seg, num_frames=cfg.skeleton_frames,
                                                        method=cfg.skeleton_method)
            out.present['skeleton'][i] = True
    if 'audio' in modalities and sample.has('audio'):
        wave_, rate = read_audio(sample)
        wave_ = resample_audio(wave_, orig_sample_rate=rate, new_sample_rate=cfg.sample_rate)
        for i, (_, b, e) in enumerate(sample.labels):
            lo = int(round((b - 1) / sample.frame_rate * cfg.sample_rate))
            hi = int(round(e / sample.frame_rate * cfg.sample_rate))
            seg = wave_[lo:hi]
            if seg.size == 0:
                continue
            if seg.size < cfg.n_fft:
                seg = np.pad(seg, (0, cfg.n_fft - seg.size))
            mel = log_mel_spectrogram(seg, sample_rate=cfg.sample_rate, n_fft=cfg.n_fft,
                                      hop_length=cfg.hop_length, n_mels=cfg.n_mels)     # (n_mels, frames)
            out.audio[i] = skel.resample_sequence(mel.T, num_frames=cfg.audio_frames).T
            out.present['audio'][i] = True
    wanted_video = [(m, medium) for m, medium in (('color_hands', 'color'), ('depth_hands', 'depth'))
                    if m in modalities and sample.has(medium)]
    if wanted_video:
        frame_numbers = np.stack([np.round(np.linspace(b, e, F)).astype(np.int64)
                                  for _, b, e in sample.labels])                           # (N, F)
        hands = skel.hand_pixel_positions(sample.pixel_position)                           # (T, 2, 2)
        hand_tracked = np.any(sample.pixel_position != 0, axis=(1, 2))
        for modality, medium in wanted_video:
            images = read_video_frames(sample, medium, frame_numbers)
            for i, (_, b, e) in enumerate(sample.labels):
                centres = _fill_untracked(hands[b - 1:e], hand_tracked[b - 1:e])
                if centres is None:
                    continue
                for f, frame in enumerate(frame_numbers[i]):
                    img = images[int(frame)]
                    if medium == 'depth':
                        img = depth_millimetres(img, max_depth=sample.max_depth)
                    for h in range(2):
                        crop = skel.crop_around(img, centres[frame - b, h], size=S)
                        if medium == 'depth':
                            out.depth_hands[i, f, h] = crop
                        else:
                            out.color_hands[i, f, h] = crop
                out.present[modality][i] = True
    return out


def concatenate_instances(parts: list[ChalearnInstances]) -> ChalearnInstances:
    """Stack the instances of several samples (same :class:`FeatureConfig`)."""
    if not parts:
        raise ValueError('no instances to concatenate')
    cfg = parts[0].config
    if any(p.config != cfg for p in parts):
        raise ValueError('instances were extracted with different feature configs')
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    return ChalearnInstances(
        skeleton=cat('skeleton'), audio=cat('audio'), color_hands=cat('color_hands'), depth_hands=cat('depth_hands'),
        labels=cat('labels'), begin=cat('begin'), end=cat('end'), sample_ids=cat('sample_ids'),
        present={m: np.concatenate([p.present[m] for p in parts]) for m in MODALITIES}, config=cfg)


def load_instances(root: str | Path, config: FeatureConfig | None = None, *,
                   modalities: tuple[str, ...] = MODALITIES) -> ChalearnInstances:
    """:func:`extract_instances` over every sample under ``root``."""
    return concatenate_instances([extract_instances(read_sample(ref), config, modalities=modalities)
                                  for ref in find_samples(root)])


# --------------------------------------------------------------------------- summary

def _video_frame_count(sample: ChalearnSample, medium: str) -> int:
    import cv2
    with _media_file(sample, medium) as path:
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise ValueError(f'{path}: OpenCV cannot open this video')
            return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            cap.release()


def summarize(root: Path) -> DatasetSummary:
    """
    Read every sample's skeleton and labels, open its media, count instances per gesture.

    Columns are the sub-folders directly under ``root`` that hold samples (e.g. training
    / validation), or ``instances`` when the samples lie in ``root`` itself.
    """
    root = Path(root)
    refs = find_samples(root)
    counts: dict[str, dict[str, int]] = {}
    layouts: dict[str, int] = {}
    media = {m: 0 for m in MEDIA}
    notes: list[str] = []
    frames = 0
    for ref in refs:
        sample = read_sample(ref)
        rel = ref.path.relative_to(root).parts
        split = rel[0] if len(rel) > 1 and not rel[0].lower().startswith(sample.sample_id.lower()) else 'instances'
        column = counts.setdefault(split, {})
        for gid in sample.labels[:, 0]:
            column[GESTURES[gid - 1]] = column.get(GESTURES[gid - 1], 0) + 1
        layouts[sample.layout] = layouts.get(sample.layout, 0) + 1
        frames += sample.num_frames
        notes.extend(sample.warnings)
        for m in MEDIA:
            if not sample.has(m):
                continue
            media[m] += 1
            if m == 'audio':
                read_audio(sample)
            else:
                count = _video_frame_count(sample, m)
                if count != sample.num_frames:
                    notes.append(f'{sample.sample_id}: {m} video has {count} frames, skeleton {sample.num_frames}')
    n = len(refs)
    modalities = {'skeleton': f'{n}/{n} samples, (T, 20, 3+4+2) world position, rotation, pixel position; '
                              f'{frames} frames'}
    for m in MEDIA:
        modalities[m] = f'{media[m]}/{n} samples' if media[m] else 'absent'
    notes.insert(0, 'layouts: ' + ', '.join(f'{k}: {v} samples' for k, v in sorted(layouts.items())))
    return DatasetSummary(name='chalearn', root=str(root), counts=counts, modalities=modalities, notes=notes)
