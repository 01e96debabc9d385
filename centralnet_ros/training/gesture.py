"""
Gesture training adapters: MSRC-12 (the shipped skeleton model) and Montalbano / ChaLearn.

Montalbano / ChaLearn is the paper's four-modality setup.

``load_msrc12(options, data_root)``
    Skeleton windows cut around the action points of the MSRC-12 recordings
    (:func:`centralnet_ros.data.msrc12.gesture_windows`), plus "no gesture" windows away
    from them, turned into the skeleton encoder's input by
    :func:`centralnet_ros.features.skeleton.skeleton_model_input` -- the function the
    runtime pipeline ``skeleton_sequence`` (:func:`~centralnet_ros.features.skeleton.skeleton_input`)
    ends in.  Protocol: leave persons out.  The persons present (p01-p12 in the shared
    copy) are sorted and cut into ``folds`` contiguous blocks; fold ``k`` tests on block
    ``k`` (or on ``test_persons`` when given).  Validation persons are carved from the
    rest: ``val_persons`` when given, else the ``n_val_persons`` persons that follow the
    test block (cyclically); training persons are the others (``n_train_persons``: the first n
    of them in that cyclic order, for a learning curve).  No person is in two splits.

``load_chalearn(options, data_root)``
    Montalbano gesture instances through :func:`centralnet_ros.data.chalearn.extract_instances`
    (plus "no gesture" segments between instances), each modality flattened to a
    compact descriptor and zero-padded to ``feature_dim`` (400, as in the paper), for the
    MLP encoders of ``config/experiments/montalbano.yaml``.  Splits by recording:
    ``train/``, ``validation/`` and ``test/`` subfolders when present, else the sorted
    samples are divided by ``val_fraction`` / ``test_fraction``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from centralnet_ros.config import from_dict
from centralnet_ros.training.datasets import ExperimentData
from centralnet_ros.training.trainer import ArraySplit
import numpy as np

__all__ = ['MSRC12Options', 'load_msrc12', 'msrc12_person_split', 'msrc12_labels', 'msrc12_windows', 'msrc12_inputs',
           'ChalearnOptions', 'load_chalearn',
           'chalearn_descriptors']


# --------------------------------------------------------------------------- MSRC-12

@dataclasses.dataclass
class MSRC12Options:
    """``dataset_options`` of an MSRC-12 preset (every field is optional)."""

    folder: str = 'msrc12'                 # under the data root
    classes: Literal['all', 'iconic', 'metaphoric'] = 'all'   # gestures kept (iconic: G2 G4 G6 G8 G10 G12)
    include_none: bool = True              # add the "no gesture" class (last label, 'none')
    persons: list[int] | None = None       # persons used (default: every person present)
    folds: int = 4                         # contiguous blocks of the sorted persons
    fold: int = 0                          # the block tested
    test_persons: list[int] | None = None  # explicit test persons (overrides folds / fold)
    val_persons: list[int] | None = None   # explicit validation persons
    n_val_persons: int = 2                 # else: the persons following the test block
    n_train_persons: int | None = None     # train on the first n of the rest only (None: every one)
    # ^ the learning curve of benchmarks/gesture_events_benchmark.py (variants persons3, persons5)
    before_s: float = 1.5                  # window: from action point - before_s ...
    after_s: float = 0.5                   # ... to action point + after_s
    frame_rate: float = 15.0               # Hz of the uniform grid (the model's input rate)
    none_stride_s: float = 1.0
    none_min_distance_s: float = 2.5
    # training split only (None: as above): "none" windows closer to the gestures and denser teach the
    # model that the motion around a gesture is no gesture; validation and test keep the definition above
    train_none_stride_s: float | None = None
    train_none_min_distance_s: float | None = None
    calibrate_none_bias: bool = False      # after training, add to the "none" logit the bias best on validation
    max_gap_s: float = 0.2
    train_offsets_s: list[float] = dataclasses.field(default_factory=lambda: [0.0])
    # ^ extra training windows with the action point shifted by these offsets (temporal jitter);
    #   validation and test use offset 0 only
    train_speeds: list[float] = dataclasses.field(default_factory=list)
    # ^ extra training windows as if performed at these speeds (0.8: slower; the window spans 0.8 x the time at
    #   0.8 x frame_rate, so the same frames hold a stretched gesture), action point at offset 0
    train_yaw_deg: list[float] = dataclasses.field(default_factory=list)
    # ^ extra training windows with the body turned by these angles about the vertical (Kinect y) axis
    train_amplitudes: list[float] = dataclasses.field(default_factory=list)
    # ^ extra training windows with the motion made this many times as large (0.7: smaller): every joint's
    #   departure from its mean position over the window scaled, as a person who gestures less (more) widely
    train_with_val: bool = False
    # ^ the validation persons are training data too (a refit once the validation persons have served: the
    #   events benchmark then calibrates on the validation streams of the same preset trained without them)
    train_instructions: list[str] | None = None
    # ^ training recordings only of these instruction modalities (msrc12.INSTRUCTIONS: 'video', 'images', 'text',
    #   'video+text', 'images+text'; None: all): e.g. leave out the renditions of people who only read a text
    train_mirror: bool = False
    # ^ a left/right-mirrored copy of every training window (every pass above, "none" included) ...
    mirror_exclude: list[str] = dataclasses.field(default_factory=lambda: ['push_right'])
    # ^ ... but of these classes: their mirror image is another gesture (push right -> push left); a mirrored
    #   throw, kick or change of weapon is the same gesture performed by a left-handed (-footed) person
    channels: list[str] = dataclasses.field(default_factory=lambda: ['position', 'velocity'])
    layout: Literal['joints_time', 'channels_time_joints'] = 'joints_time'
    cache: bool = True                     # the reader's parsed-CSV cache
    # 2-D bodies: project the joints through random virtual cameras onto ROS4HRI Skeleton2D keypoints
    projection: Literal['none', 'pinhole'] = 'none'
    camera: dict[str, Any] = dataclasses.field(default_factory=dict)   # CameraRanges fields (train, val)
    test_camera: str = 'all'               # a features.skeleton2d.CAMERA_CONDITIONS name (test split)
    camera_draws: int = 1                  # cameras per training window
    noise_px: float = 2.0                  # keypoint noise (pixels, standard deviation), every split
    dropout: float = 0.05                  # keypoints dropped per frame
    limb_dropout: float = 0.02             # keypoints lost for 3-10 frames (occlusion)
    min_confidence: float = 0.1            # Skeleton2D points below this count as missing
    projection_seed: int = 0

    def __post_init__(self):
        from centralnet_ros.features.skeleton2d import CAMERA_CONDITIONS
        if self.test_camera not in CAMERA_CONDITIONS:
            raise ValueError(f'test_camera must be one of {sorted(CAMERA_CONDITIONS)}, got {self.test_camera!r}')
        if self.camera_draws < 1:
            raise ValueError(f'camera_draws must be >= 1, got {self.camera_draws}')

        if self.train_instructions is not None:
            from centralnet_ros.data import msrc12
            bad = sorted(set(self.train_instructions) - set(msrc12.INSTRUCTIONS))
            if bad or not self.train_instructions:
                raise ValueError(f'train_instructions: {"unknown " + str(bad) if bad else "none kept"}; expected '
                                 f'some of {list(msrc12.INSTRUCTIONS)} (or null: all)')
        if self.mirror_exclude:
            from centralnet_ros.data import msrc12
            bad = sorted(set(self.mirror_exclude) - set(msrc12.CLASS_NAMES))
            if bad:
                raise ValueError(f'mirror_exclude: unknown classes {bad} (known: {list(msrc12.CLASS_NAMES)})')

    @property
    def num_frames(self) -> int:
        return int(round((self.before_s + self.after_s) * self.frame_rate))

    def camera_ranges(self):
        """Return the :class:`~centralnet_ros.features.skeleton2d.CameraRanges` of the training cameras."""
        from centralnet_ros.features.skeleton2d import CameraRanges
        return from_dict(CameraRanges, {k: tuple(v) if isinstance(v, list) else v for k, v in self.camera.items()},
                         _where='dataset_options.camera')

    def pipeline_params(self) -> dict[str, Any]:
        """Return the ``skeleton_sequence`` (``skeleton2d_sequence``) preprocessing that reproduces these arrays."""
        params = {'frame_rate': float(self.frame_rate), 'num_frames': self.num_frames,
                  'channels': list(self.channels), 'layout': self.layout}
        if self.projection == 'pinhole':
            r = self.camera_ranges()
            params.update(aspect_ratio=r.width / r.height, min_confidence=float(self.min_confidence))
        return params

    def bundle_inputs(self) -> dict[str, Any]:
        """Return the bundle modality fields that make these arrays from raw joints: the pipeline's and the window."""
        return {'preprocessing': self.pipeline_params(), 'window_s': float(self.before_s + self.after_s)}


def msrc12_person_split(persons: list[int], opts: MSRC12Options) -> tuple[list[int], list[int], list[int]]:
    """``(train, val, test)`` person lists of the fold scheme described in the module docstring."""
    persons = sorted({int(p) for p in persons})
    if opts.test_persons is not None:
        test = sorted({int(p) for p in opts.test_persons})
        missing = set(test) - set(persons)
        if missing:
            raise ValueError(f'test_persons {sorted(missing)} have no MSRC-12 recording (present: {persons})')
        block_end = persons.index(max(test)) + 1
    else:
        if not 2 <= opts.folds <= len(persons):
            raise ValueError(f'folds must be in [2, {len(persons)}] for {len(persons)} persons, got {opts.folds}')
        if not 0 <= opts.fold < opts.folds:
            raise ValueError(f'fold must be in [0, {opts.folds - 1}], got {opts.fold}')
        bounds = np.linspace(0, len(persons), opts.folds + 1).round().astype(int)
        test = persons[bounds[opts.fold]:bounds[opts.fold + 1]]
        block_end = int(bounds[opts.fold + 1])
    rest = [p for p in persons[block_end:] + persons[:block_end] if p not in test]   # after the block, cyclic
    if opts.val_persons is not None:
        val = sorted({int(p) for p in opts.val_persons})
        bad = [p for p in val if p not in rest]
        if bad:
            raise ValueError(f'val_persons {bad} are test persons or have no recording (available: {sorted(rest)})')
    else:
        if not 1 <= opts.n_val_persons < len(rest):
            raise ValueError(f'n_val_persons must be in [1, {len(rest) - 1}], got {opts.n_val_persons}')
        val = sorted(rest[:opts.n_val_persons])
    train = [p for p in rest if p not in val]
    if opts.n_train_persons is not None:
        if not 1 <= opts.n_train_persons <= len(train):
            raise ValueError(f'n_train_persons must be in [1, {len(train)}] (the persons neither tested nor '
                             f'validated on), got {opts.n_train_persons}')
        train = train[:opts.n_train_persons]   # the ones following the validation persons, cyclically
    return sorted(train), val, sorted(test)


def msrc12_labels(opts: MSRC12Options) -> tuple[list[str], np.ndarray, tuple[int, ...]]:
    """``(label_names, remap, gestures)``: our labels, reader label -> ours (-1: dropped), the G-numbers kept."""
    from centralnet_ros.data import msrc12
    gestures = {'all': tuple(range(1, 13)), 'iconic': msrc12.ICONIC, 'metaphoric': msrc12.METAPHORIC}[opts.classes]
    label_names = [msrc12.GESTURES[g - 1] for g in gestures] + ([msrc12.NONE_CLASS] if opts.include_none else [])
    remap = np.full(len(msrc12.CLASS_NAMES), -1, np.int64)
    for i, g in enumerate(gestures):
        remap[g - 1] = i
    if opts.include_none:
        remap[msrc12.NONE_LABEL] = len(gestures)
    return label_names, remap, gestures


def msrc12_windows(sequences: list, persons: list[int], offsets: list[float], opts: MSRC12Options,
                   remap: np.ndarray, *, speeds: list[float] = (), yaws_deg: list[float] = (),
                   amplitudes: list[float] = (),
                   mirror_exclude: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """
    Joint windows ``(N, T, 20, 3)`` of ``persons`` and their labels (``remap`` of the reader's labels).

    One pass per action-point offset, then one per speed in ``speeds``, one per body
    yaw in ``yaws_deg`` and one per motion amplitude in ``amplitudes`` (all at offset 0,
    see :class:`MSRC12Options`); "none" windows only in the first pass.  ``mirror_exclude``
    (labels after ``remap``): when given, the windows of all passes follow, mirrored
    left/right, except those of these labels.
    """
    from centralnet_ros.data import msrc12
    window_kw = {'none_min_distance_s': opts.none_min_distance_s, 'none_stride_s': opts.none_stride_s,
                 'max_gap_s': opts.max_gap_s}
    seqs = [s for s in sequences if s.info.person in persons]
    passes = ([(float(o), 1.0, 0.0, 1.0) for o in offsets] + [(0.0, float(v), 0.0, 1.0) for v in speeds]
              + [(0.0, 1.0, float(a), 1.0) for a in yaws_deg] + [(0.0, 1.0, 0.0, float(a)) for a in amplitudes])
    js, ys, dropped = [], [], {}
    for k, (offset, speed, yaw, amplitude) in enumerate(passes):
        if not speed > 0:
            raise ValueError(f'train_speeds must be > 0, got {speed}')
        if not amplitude > 0:
            raise ValueError(f'train_amplitudes must be > 0, got {amplitude}')
        shifted = seqs if offset == 0 else [
            dataclasses.replace(s, action_times=s.action_times + int(round(offset * 1e6))) for s in seqs]
        w = msrc12.gesture_windows(shifted, include_none=opts.include_none and k == 0, before_s=opts.before_s * speed,
                                   after_s=opts.after_s * speed, frame_rate=opts.frame_rate / speed, **window_kw)
        for why, n in w.dropped.items():
            dropped[why] = dropped.get(why, 0) + n
        labels = remap[w.labels]
        keep = labels >= 0
        joints = w.joints[keep]
        if yaw:
            c, s_ = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
            rot = np.asarray([[c, 0.0, s_], [0.0, 1.0, 0.0], [-s_, 0.0, c]], np.float32)
            joints = joints @ rot.T
        if amplitude != 1.0:
            mean = joints.mean(axis=1, keepdims=True)          # each joint's mean position over its window
            joints = (mean + amplitude * (joints - mean)).astype(joints.dtype)
        js.append(joints)
        ys.append(labels[keep])
    joints, labels = np.concatenate(js), np.concatenate(ys)
    if mirror_exclude is not None:
        from centralnet_ros.features.skeleton import mirror_kinect_joints
        sel = ~np.isin(labels, list(mirror_exclude))
        joints = np.concatenate([joints, mirror_kinect_joints(joints[sel]).astype(joints.dtype)])
        labels = np.concatenate([labels, labels[sel]])
    return joints, labels, dropped


_SPLIT_SEEDS = {'train': 0, 'val': 1, 'test': 2}


def training_window_options(opts: MSRC12Options) -> MSRC12Options:
    """Return the options the training windows are cut with (``train_none_*`` in place of ``none_*``)."""
    if opts.train_none_stride_s is None and opts.train_none_min_distance_s is None:
        return opts
    return dataclasses.replace(
        opts, none_stride_s=opts.none_stride_s if opts.train_none_stride_s is None else opts.train_none_stride_s,
        none_min_distance_s=(opts.none_min_distance_s if opts.train_none_min_distance_s is None
                             else opts.train_none_min_distance_s))


BIAS_GRID = tuple(np.round(np.arange(-3.0, 3.01, 0.25), 2))
"""Biases tried on the "none" logit by :func:`calibrate_class_bias` (-6..3 overfitted the validation persons)."""


def choose_class_bias(logits: np.ndarray, labels: np.ndarray, cls: int, grid=BIAS_GRID) -> tuple[float, float]:
    """
    Return ``(bias, accuracy)``: the bias on logit ``cls`` with the best accuracy on ``(logits, labels)``.

    Ties go to the bias nearest 0.  Choose it on validation data, never on the test split.
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    best = (-1.0, 0.0)
    for b in sorted(grid, key=abs):
        shifted = logits.copy()
        shifted[:, cls] += b
        acc = float(np.mean(shifted.argmax(1) == labels))
        if acc > best[0] + 1e-12:
            best = (acc, float(b))
    return best[1], best[0]


def calibrate_class_bias(model: Any, val: Any, cls: int) -> dict[str, float]:
    """
    Add to class ``cls``'s output bias the bias best on the validation split ``val`` (an ArraySplit).

    The model's single classification layer (a ``Linear`` with ``num_classes`` outputs;
    an ensemble: one per member, each given the bias, which shifts their mean logit by
    it) carries it, so a saved bundle decides with it and nothing changes at run time.
    Returns ``{'bias', 'val_accuracy_before', 'val_accuracy_after'}``.
    """
    import torch

    from .trainer import predict
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == model.num_classes
             and m.bias is not None]
    members = len(getattr(model, 'members', None) or [model])
    if len(heads) != members:
        raise ValueError(f'calibrate_class_bias needs one output layer per member ({members}), '
                         f'the model has {len(heads)}')
    logits = predict(model, val)
    before = float(np.mean(logits.argmax(1) == np.asarray(val.labels)))
    bias, after = choose_class_bias(logits, val.labels, cls)
    with torch.no_grad():
        for head in heads:
            head.bias[cls] += bias
    return {'bias': bias, 'val_accuracy_before': before, 'val_accuracy_after': after}


def msrc12_inputs(joints: np.ndarray, labels: np.ndarray, opts: MSRC12Options, *, split: str = 'train',
                  cameras=None, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """
    Make the encoder inputs of joint windows ``(N, T, 20, 3)``: ``(inputs, labels)``.

    ``projection='none'``: :func:`~centralnet_ros.features.skeleton.skeleton_model_input` of
    the 3-D joints.  ``'pinhole'``: each window seen by random virtual cameras
    (``cameras``, default: ``opts.camera`` for train and val, ``CAMERA_CONDITIONS[opts.test_camera]``
    for test; ``camera_draws`` per training window) as Skeleton2D keypoints with detector
    noise and drop-outs, then :func:`~centralnet_ros.features.skeleton2d.skeleton2d_feature_map`
    -- what the ``skeleton2d_sequence`` pipeline computes on the robot.  The random
    cameras depend on ``projection_seed``, the split and ``seed`` only.
    """
    from centralnet_ros.features import skeleton as skel
    if opts.projection == 'none':
        x = [skel.skeleton_model_input(j, channels=opts.channels, layout=opts.layout) for j in joints]
        return np.stack(x).astype(np.float32), np.asarray(labels)
    from centralnet_ros.features import skeleton2d as s2d
    if cameras is None:
        cameras = s2d.CAMERA_CONDITIONS[opts.test_camera] if split == 'test' else opts.camera_ranges()
    rng = np.random.default_rng([opts.projection_seed, _SPLIT_SEEDS.get(split, 3), 0 if seed is None else seed])
    draws = opts.camera_draws if split == 'train' else 1
    size = (cameras.width, cameras.height)
    xs, ys = [], []
    for _ in range(draws):
        for j, y in zip(joints, labels):
            cam = s2d.sample_camera(rng, j, cameras)
            kp = s2d.corrupt_keypoints(s2d.kinect_to_skeleton2d(j, cam), rng, image_size=size, noise_px=opts.noise_px,
                                       dropout=opts.dropout, limb_dropout=opts.limb_dropout)
            try:
                fm = s2d.skeleton2d_feature_map(kp, aspect_ratio=size[0] / size[1], min_confidence=opts.min_confidence,
                                                channels=opts.channels)
            except ValueError:            # the person is out of view: nothing a detector would report
                continue
            xs.append(skel.feature_layout(fm, layout=opts.layout))
            ys.append(y)
    return np.stack(xs).astype(np.float32), np.asarray(ys, np.int64)


def load_msrc12(options: dict[str, Any], data_root: Path) -> ExperimentData:
    """
    MSRC-12 skeleton windows, split by persons; modality ``skeleton``.

    Inputs: ``(N, 3 * len(channels) * 20, T)`` (``layout='joints_time'``) or
    ``(N, 3 * len(channels), T, 20)``, ``T = round((before_s + after_s) * frame_rate)``.
    Labels index ``label_names``: the kept gestures in G-number order, then ``'none'``.
    """
    from centralnet_ros.data import msrc12

    opts = from_dict(MSRC12Options, options, _where='dataset_options')
    root = Path(data_root) / opts.folder
    sequences = msrc12.load_sequences(root, persons=opts.persons, cache=opts.cache)
    present = sorted({s.info.person for s in sequences})
    train_p, val_p, test_p = msrc12_person_split(present, opts)
    if opts.train_with_val:
        train_p = sorted(train_p + val_p)

    label_names, remap, gestures = msrc12_labels(opts)
    kept_seqs = [s for s in sequences if s.info.gesture in gestures]
    mirror_exclude = [label_names.index(c) for c in opts.mirror_exclude if c in label_names] if opts.train_mirror \
        else None

    def arrays(persons: list[int], offsets: list[float], split: str) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        extra = {'speeds': opts.train_speeds, 'yaws_deg': opts.train_yaw_deg, 'amplitudes': opts.train_amplitudes,
                 'mirror_exclude': mirror_exclude} if split == 'train' else {}
        seqs = kept_seqs if split != 'train' or opts.train_instructions is None else \
            [q for q in kept_seqs if q.info.instruction in opts.train_instructions]
        joints, labels, dropped = msrc12_windows(seqs, persons, offsets,
                                                 training_window_options(opts) if split == 'train' else opts, remap,
                                                 **extra)
        if not len(labels):
            raise ValueError(f'MSRC-12 persons {persons}: no window of classes {opts.classes!r}')
        return (*msrc12_inputs(joints, labels, opts, split=split), dropped)

    offsets = [0.0] + [float(o) for o in opts.train_offsets_s if float(o) != 0.0]
    (x_tr, y_tr, d_tr), (x_va, y_va, _), (x_te, y_te, d_te) = (
        arrays(train_p, offsets, 'train'), arrays(val_p, [0.0], 'val'), arrays(test_p, [0.0], 'test'))
    fmt = lambda ps: ', '.join(f'p{p:02d}' for p in ps)  # noqa: E731
    info = {
        'protocol': (f'MSRC-12 leave-persons-out: train {fmt(train_p)}; val {fmt(val_p)}'
                     f'{" (trained on too: a refit)" if opts.train_with_val else ""}; test {fmt(test_p)}; '
                     f'windows {opts.before_s:g} s before to {opts.after_s:g} s after each action point at '
                     f'{opts.frame_rate:g} Hz' + ('; "none" windows >= '
                                                  f'{opts.none_min_distance_s:g} s from every action point'
                                                  if opts.include_none else '')),
        'train_persons': fmt(train_p), 'val_persons': fmt(val_p), 'test_persons': fmt(test_p),
        **({'train_with_val': 'the validation persons are training data too (a refit): figures on them are not held '
            'out'} if opts.train_with_val else {}),
        'classes': opts.classes, 'include_none': opts.include_none,
        'train_offsets_s': ', '.join(f'{o:g}' for o in offsets),
        **({'train_speeds': ', '.join(f'{v:g}' for v in opts.train_speeds)} if opts.train_speeds else {}),
        **({'train_yaw_deg': ', '.join(f'{a:g}' for a in opts.train_yaw_deg)} if opts.train_yaw_deg else {}),
        **({'train_instructions': ', '.join(opts.train_instructions)} if opts.train_instructions is not None else {}),
        **({'train_amplitudes': ', '.join(f'{a:g}' for a in opts.train_amplitudes)} if opts.train_amplitudes else {}),
        **({'train_mirror': 'left/right-mirrored copies of the training windows except '
            + (', '.join(opts.mirror_exclude) or 'none')} if opts.train_mirror else {}),
        'windows_dropped': sum(d_tr.values()) + sum(d_te.values()),
    }
    if opts.include_none and training_window_options(opts) is not opts:
        t = training_window_options(opts)
        info['train_none'] = (f'training "none" windows >= {t.none_min_distance_s:g} s from every action point, every '
                              f'{t.none_stride_s:g} s')
    if opts.include_none and opts.calibrate_none_bias:
        info['calibrate_bias_class'] = len(label_names) - 1
    if opts.projection == 'pinhole':
        r = opts.camera_ranges()
        info['projection'] = (f'Kinect joints projected onto ROS4HRI Skeleton2D keypoints by random pinhole cameras '
                              f'({opts.camera_draws} per training window): '
                              f'height {r.height_m[0]:g}-{r.height_m[1]:g} m, '
                              f'distance {r.distance_m[0]:g}-{r.distance_m[1]:g} m, yaw {r.yaw_deg[0]:g} to '
                              f'{r.yaw_deg[1]:g} deg, focal {r.focal_px[0]:g}-{r.focal_px[1]:g} px, '
                              f'{r.width}x{r.height}; '
                              f'keypoint noise {opts.noise_px:g} px, drop-out {opts.dropout:g} per frame, occlusions '
                              f'{opts.limb_dropout:g}; test cameras: {opts.test_camera}')
    return ExperimentData(train=ArraySplit({'skeleton': x_tr}, y_tr), val=ArraySplit({'skeleton': x_va}, y_va),
                          test=ArraySplit({'skeleton': x_te}, y_te), label_names=label_names, info=info,
                          bundle_inputs={'skeleton': opts.bundle_inputs()})


# --------------------------------------------------------------------------- Montalbano / ChaLearn

CHALEARN_MODALITIES = ('skeleton', 'audio', 'color_hands', 'depth_hands')


@dataclasses.dataclass
class ChalearnOptions:
    """``dataset_options`` of the Montalbano preset."""

    folder: str = 'chalearn'               # under the data root
    feature_dim: int = 400                 # every modality's descriptor zero-padded to this
    include_none: bool = True              # 21st class: "no gesture" segments between instances
    none_frames: int = 40                  # length of a "no gesture" segment (frames)
    none_margin: int = 5                   # frames kept clear of every labelled instance
    val_fraction: float = 0.15             # used when there are no train/validation/test subfolders
    test_fraction: float = 0.15
    skeleton_frames: int = 10              # skeleton: (9 channels, frames, 20 joints) -> mean and std
    n_mels: int = 40                       # audio: (n_mels, audio_frames) log-mel
    audio_frames: int = 8
    crop_size: int = 40                    # hand crops read at this size ...
    crop_frames: int = 2                   # ... at this many frames per instance ...
    crop_resize: int = 10                  # ... and shrunk to crop_resize x crop_resize (grey / metres)


def _feature_config(opts: ChalearnOptions):
    from centralnet_ros.data import chalearn
    return chalearn.FeatureConfig(skeleton_frames=opts.skeleton_frames, n_mels=opts.n_mels,
                                  audio_frames=opts.audio_frames, crop_size=opts.crop_size,
                                  crop_frames=opts.crop_frames)


def _pad(x: np.ndarray, dim: int, what: str) -> np.ndarray:
    """(N, d) -> (N, dim) zero-padded; a descriptor longer than ``dim`` is an error."""
    if x.shape[1] > dim:
        raise ValueError(f'{what} descriptor has {x.shape[1]} values, more than feature_dim={dim}; '
                         'lower its size options')
    return np.pad(x, ((0, 0), (0, dim - x.shape[1]))).astype(np.float32)


def chalearn_descriptors(inst, opts: ChalearnOptions) -> dict[str, np.ndarray]:
    """
    Per-instance descriptors, each ``(N, feature_dim)`` float32, zero-padded.

    skeleton: mean and standard deviation over time of the 9 x 20 feature-map channels
    (positions, velocities, accelerations; 360 values); audio: the ``n_mels x
    audio_frames`` log-mel map; colour hands: ``crop_frames x 2`` grey crops in [0, 1]
    shrunk to ``crop_resize``; depth hands: the same in metres.
    """
    import cv2
    n, dim, r = len(inst), opts.feature_dim, opts.crop_resize
    skel_fm = inst.skeleton                                              # (N, 9, F, 20)
    skel_desc = np.concatenate([skel_fm.mean(axis=2).reshape(n, -1), skel_fm.std(axis=2).reshape(n, -1)], axis=1)
    audio_desc = inst.audio.reshape(n, -1)                               # (N, n_mels * audio_frames)

    def shrink(crops: np.ndarray) -> np.ndarray:                          # (N, F, 2, S, S) -> (N, F * 2 * r * r)
        flat = crops.reshape(-1, *crops.shape[-2:]).astype(np.float32)
        small = np.stack([cv2.resize(c, (r, r), interpolation=cv2.INTER_AREA) for c in flat]) if len(flat) else \
            np.zeros((0, r, r), np.float32)
        return small.reshape(n, -1)

    grey = inst.color_hands.astype(np.float32).mean(axis=-1) / 255.0      # (N, F, 2, S, S)
    depth_m = inst.depth_hands / 1000.0
    return {'skeleton': _pad(skel_desc, dim, 'skeleton'), 'audio': _pad(audio_desc, dim, 'audio'),
            'color_hands': _pad(shrink(grey), dim, 'color_hands'),
            'depth_hands': _pad(shrink(depth_m), dim, 'depth_hands')}


def _none_segments(sample, opts: ChalearnOptions) -> np.ndarray:
    """``(K, 3)`` label rows (id 21, begin, end; 1-based inclusive) between labelled instances."""
    busy = np.zeros(sample.num_frames + 2, bool)
    for _, b, e in sample.labels:
        busy[max(b - opts.none_margin, 1):min(e + opts.none_margin, sample.num_frames) + 1] = True
    rows, start = [], 1
    while start + opts.none_frames - 1 <= sample.num_frames:
        end = start + opts.none_frames - 1
        if not busy[start:end + 1].any():
            rows.append((21, start, end))
            start = end + 1
        else:
            start += 1
    return np.asarray(rows, np.int64).reshape(-1, 3)


def _chalearn_split(refs, opts: ChalearnOptions, cfg) -> ArraySplit:
    """Instances (plus "no gesture" segments) of some recordings as padded descriptors."""
    from centralnet_ros.data import chalearn
    parts = []
    for ref in refs:
        sample = chalearn.read_sample(ref)
        if opts.include_none:
            extra = _none_segments(sample, opts)
            if len(extra):
                sample = dataclasses.replace(sample, labels=np.concatenate([sample.labels, extra]))
        parts.append(chalearn.extract_instances(sample, cfg))
    inst = chalearn.concatenate_instances(parts)
    return ArraySplit(chalearn_descriptors(inst, opts), inst.labels.astype(np.int64))


def load_chalearn(options: dict[str, Any], data_root: Path) -> ExperimentData:
    """
    Montalbano instances with the four modalities as 400-d descriptors (see :func:`chalearn_descriptors`).

    Labels: gesture id - 1 (20 Italian gestures), then 20 = ``'none'`` when
    ``include_none``.  A modality absent from a recording (e.g. 2014 audio) is all
    zeros.
    """
    from centralnet_ros.data import chalearn

    opts = from_dict(ChalearnOptions, options, _where='dataset_options')
    root = Path(data_root) / opts.folder
    cfg = _feature_config(opts)
    subdirs = {'train': root / 'train', 'val': root / 'validation', 'test': root / 'test'}
    label_names = list(chalearn.GESTURES) + (['none'] if opts.include_none else [])
    if all(d.is_dir() for d in subdirs.values()):
        groups = {name: chalearn.find_samples(folder) for name, folder in subdirs.items()}
        protocol = 'ChaLearn train / validation / test folders'
    else:
        refs = chalearn.find_samples(root)
        n = len(refs)
        n_test = max(1, int(round(n * opts.test_fraction)))
        n_val = max(1, int(round(n * opts.val_fraction)))
        if n - n_test - n_val < 1:
            raise ValueError(f'{root}: {n} recordings are too few for val_fraction={opts.val_fraction} and '
                             f'test_fraction={opts.test_fraction}; at least 3 are needed')
        groups = {'train': refs[:n - n_val - n_test], 'val': refs[n - n_val - n_test:n - n_test],
                  'test': refs[n - n_test:]}
        protocol = (f'Montalbano recordings split by sample id: first {len(groups["train"])} train, next '
                    f'{n_val} validation, last {n_test} test')
    splits = {name: _chalearn_split(group, opts, cfg) for name, group in groups.items()}
    counts = {name: len(group) for name, group in groups.items()}
    info = {'protocol': protocol, 'feature_dim': opts.feature_dim,
            'recordings': ', '.join(f'{k} {v}' for k, v in counts.items())}
    return ExperimentData(train=splits['train'], val=splits['val'], test=splits['test'],
                          label_names=label_names, info=info)
