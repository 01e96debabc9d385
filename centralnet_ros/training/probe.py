"""
The report's probing table (Hsieh 2017) on AV-MNIST image + spectrogram, and its figures.

Why AV-MNIST (image 1x28x28, log-mel spectrogram 1x24x24) rather than AVLetters (lip frame,
MFCC map): the auto-encoders are trained without labels and probed with linear
classifiers, which needs thousands of paired samples -- AV-MNIST has 55,000 training
pairs, AVLetters 600 utterances -- and the report's own CAE experiments were on MNIST
digits.  AVLetters is used for the KNN transfer (:mod:`.transfer`), as in the report.

For each modality, test accuracy of

1. ``linear_raw``: a linear (softmax) classifier on the raw, flattened input;
2. ``linear_cae``: the same on the (denoising) CAE's middle layer, the CAE trained on
   that modality alone without labels;
3. ``linear_shared``: the same on the bimodal CAE's shared layer computed from this
   modality alone (the other modality's contribution zeroed, as in modality dropout);
4. ``cae_supervised``: the CAE's encoder architecture (three VALID convolutions) plus a
   linear layer, trained end to end with labels;
5. ``cnn``: the project's CNN encoder for the modality (``cnn2d``, the AV-MNIST preset's
   widths 12-24-48, 3x3 same-padded convolutions, batch norm, max pooling, global average
   pooling, linear), trained with labels.

plus ``linear_shared`` with both modalities present (one extra cell).  Features for the
linear probes are standardised with the training subset's statistics; every classifier
keeps the epoch with the best validation accuracy.

Figures: ``probing_denoising.png`` (the report's Figure 7: clean input, pixel-dropout
corrupted input, denoising-CAE reconstruction) and ``probing_cross_modal.png`` (Figure 9:
each modality reconstructed by the bimodal CAE from the other one alone).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
import time
from typing import Callable

from centralnet_ros.evaluation.plots import pyplot, save_figure
from centralnet_ros.representation.bimodal import BimodalCAE, BimodalCAEConfig
from centralnet_ros.representation.cae import CAEConfig, ConvAutoEncoder, encode_array, pixel_dropout
from centralnet_ros.training.autoencoders import train_bimodal, train_cae
from centralnet_ros.training.trainer import fit, make_optimizer
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

__all__ = ['ProbeConfig', 'ProbeResult', 'run_probe', 'train_classifier', 'linear_probe', 'CAEClassifier',
           'render_markdown', 'write_results', 'MODALITIES', 'ROWS']

MODALITIES = ('image', 'audio')      # AV-MNIST's pair; the RGB-D datasets' pair is ('color', 'depth')
PROBE_DATASETS = ('avmnist', 'senz3d', 'asl_fingerspelling')
ROWS = {
    'linear_raw': 'linear classifier on the raw input',
    'linear_cae': 'linear classifier on CAE features (middle layer, unimodal denoising CAE)',
    'linear_shared': 'linear classifier on shared bimodal CAE features, other modality zeroed',
    'cae_supervised': 'CAE encoder architecture trained supervised end to end',
    'cnn': 'CNN (project cnn2d encoder, 12-24-48) trained supervised',
}
REPORT_REFERENCE = ("the report's own probing numbers are not available in the material here, so the table "
                    "is not set side by side with them; the rows are the report's.")


@dataclasses.dataclass
class ProbeConfig:
    dataset: str = 'avmnist'          # one of PROBE_DATASETS
    n_train: int = 10000              # AV-MNIST training pairs used (subset of the 55,000)
    n_val: int = 2000                 # validation pairs (subset of the 5,000)
    n_test: int | None = None         # test pairs (None: all 10,000)
    seed: int = 0
    cae_channels: list[int] = dataclasses.field(default_factory=lambda: [16, 32, 32])
    denoise_p: float = 0.3            # pixel dropout of the denoising CAEs
    cae_epochs: int = 6
    bimodal_epochs: int = 6
    shared_dim: int = 256
    absent_threshold: float = 0.25
    supervised_epochs: int = 6
    linear_epochs: int = 30
    cnn_widths: list[int] = dataclasses.field(default_factory=lambda: [12, 24, 48])
    batch_size: int = 128
    lr: float = 2e-3
    figure_corruption: float = 0.5    # pixel dropout shown in the denoising figure
    image_size: int = 32              # Senz3D / ASL: colour and depth maps resized to this square
    max_per_letter: int | None = 100  # ASL Finger Spelling: images kept per subject and letter

    def __post_init__(self):
        if self.dataset not in PROBE_DATASETS:
            raise ValueError(f'probe dataset must be one of {PROBE_DATASETS}, got {self.dataset!r}')


@dataclasses.dataclass
class ProbeResult:
    config: dict
    table: dict[str, dict[str, float]]          # row -> {'image': acc, 'audio': acc[, 'both': acc]}
    val_table: dict[str, dict[str, float]]
    timings: dict[str, float]
    data: dict
    figures: dict[str, str] = dataclasses.field(default_factory=dict)   # name -> PNG file name in out_dir


# --------------------------------------------------------------------------- classifiers

class CAEClassifier(nn.Module):
    """The CAE's encoder (3 VALID convs + ReLU) and a linear layer on the flattened middle layer."""

    def __init__(self, config: CAEConfig, num_classes: int):
        super().__init__()
        self.cae = ConvAutoEncoder(config)
        self.cae.decoder = nn.ModuleList()               # encoder only
        self.fc = nn.Linear(config.code_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.cae.encode(x).flatten(1))    # (B, num_classes)


@torch.inference_mode()
def _accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size], dtype=np.float32))
        correct += int((model(xb).argmax(1).numpy() == y[start:start + batch_size]).sum())
    return correct / max(len(x), 1)


def train_classifier(model: nn.Module, x: np.ndarray, y: np.ndarray, *, x_val: np.ndarray | None = None,
                     y_val: np.ndarray | None = None, epochs: int = 10, batch_size: int = 128, lr: float = 2e-3,
                     weight_decay: float = 1e-4, seed: int = 0,
                     augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                     log: Callable[[str], None] | None = None, desc: str = 'classifier') -> dict:
    """
    Cross-entropy training in place: Adam, cosine learning rate, ``epochs`` passes.

    With a validation set the weights of the best validation epoch are kept, otherwise
    the last.  Returns ``{'best_epoch', 'val_accuracy', 'train_accuracy', 'history'}``.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)

    def step(index):
        xb = x[index]
        if augment is not None:
            xb = augment(xb, rng)
        xb = torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32))
        return F.cross_entropy(model(xb), torch.from_numpy(y[index]).long()), len(index), {}

    def report(record):
        if log:
            log(f'  {desc} epoch {record["epoch"]}/{epochs}: loss {record["loss"]:.3f}'
                + (f', val {record["val_accuracy"]:.3f}' if 'val_accuracy' in record else ''))

    def batches():
        return np.array_split(rng.permutation(len(x)), max(1, len(x) // batch_size))

    fitted = fit(model, epochs=epochs, batches=batches, step=step, optimizer=optimizer,
                 scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1)),
                 evaluate=None if x_val is None else (lambda: _accuracy(model, x_val, y_val)),
                 metric='val_accuracy', end_of_epoch=report)
    model.eval()
    return {'best_epoch': fitted.best_epoch, 'val_accuracy': fitted.best_score, 'history': fitted.history}


def linear_probe(f_train: np.ndarray, y_train: np.ndarray, f_val: np.ndarray, y_val: np.ndarray,
                 f_test: np.ndarray, y_test: np.ndarray, *, num_classes: int, epochs: int = 30,
                 seed: int = 0) -> dict:
    """
    Softmax regression on features standardised with the training statistics.

    Returns ``{'val_accuracy', 'test_accuracy', 'best_epoch', 'dim'}``.
    """
    mean = f_train.mean(0, keepdims=True)
    std = f_train.std(0, keepdims=True) + 1e-6
    norm = [((f - mean) / std).astype(np.float32) for f in (f_train, f_val, f_test)]
    model = nn.Linear(f_train.shape[1], num_classes)
    fit = train_classifier(model, norm[0], y_train, x_val=norm[1], y_val=y_val, epochs=epochs, batch_size=256,
                           lr=1e-3, weight_decay=1e-4, seed=seed)
    return {'val_accuracy': fit['val_accuracy'], 'test_accuracy': _accuracy(model, norm[2], y_test),
            'best_epoch': fit['best_epoch'], 'dim': int(f_train.shape[1])}


# ------------------------------------------------------------------------------ driver

def _subset(n_total: int, n: int | None, rng: np.random.Generator) -> np.ndarray:
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.sort(rng.choice(n_total, size=n, replace=False))


def load_probe_data(cfg: ProbeConfig, data_root: Path | None = None) -> dict:
    """
    Return ``{'splits': {split: {m1, m2, 'y'}}, 'info', 'modalities': (m1, m2), 'num_classes'}``.

    AV-MNIST (default build, cached, subsampled): ``image`` and ``audio``.  Creative Senz3D and
    ASL Finger Spelling: ``color`` and ``depth`` maps (1 x size x size), split by subject: the
    last subject is the test split, the one before it validation, the others training (the
    representations must carry over to a person never seen).
    """
    if cfg.dataset != 'avmnist':
        return _load_rgbd_probe_data(cfg, data_root)
    from centralnet_ros.data.avmnist import AVMNISTConfig, load_avmnist
    data = load_avmnist(AVMNISTConfig(seed=0), root=data_root)
    rng = np.random.default_rng(cfg.seed)
    out = {}
    for split, n in (('train', cfg.n_train), ('val', cfg.n_val), ('test', cfg.n_test)):
        s = getattr(data, split)
        idx = _subset(len(s), n, rng)
        out[split] = {'image': s.image[idx], 'audio': s.audio[idx], 'y': s.labels[idx]}
    info = {'dataset': 'AV-MNIST (centralnet_ros.data.avmnist, default build: MNIST images with 75 % '
                       'of the PCA energy removed, FSDD log-mel 24x24)',
            'pca_components': data.metadata.pca_components,
            'sizes': {k: int(len(v['y'])) for k, v in out.items()},
            'input_shapes': {m: list(out['train'][m].shape[1:]) for m in MODALITIES}}
    return {'splits': out, 'info': info, 'modalities': MODALITIES, 'num_classes': 10}


def _load_rgbd_probe_data(cfg: ProbeConfig, data_root: Path | None) -> dict:
    import importlib

    from centralnet_ros import paths
    from centralnet_ros.data.rgbd import RGBDOptions
    from centralnet_ros.data.registry import default_root
    module = importlib.import_module(f'centralnet_ros.data.{cfg.dataset}')
    root = default_root(cfg.dataset, paths.data_root(data_root))
    base = getattr(module, 'DEFAULT_OPTIONS', RGBDOptions())
    opts = dataclasses.replace(base, size=(cfg.image_size, cfg.image_size))
    kwargs = {'max_per_letter': cfg.max_per_letter} if cfg.dataset == 'asl_fingerspelling' else {}
    arrays = module.load_arrays(root, opts, **kwargs)
    subjects = sorted(set(arrays['subjects'].tolist()))
    if len(subjects) < 3:
        raise ValueError(f'{root}: the probe splits by subject and needs at least 3, found {len(subjects)}')
    which = {'test': [subjects[-1]], 'val': [subjects[-2]], 'train': subjects[:-2]}
    out = {}
    for split, chosen in which.items():
        idx = np.flatnonzero(np.isin(arrays['subjects'], chosen))
        out[split] = {m: arrays[m][idx][:, None].astype(np.float32) for m in ('color', 'depth')}
        out[split]['y'] = arrays['labels'][idx]
    info = {'dataset': f'{cfg.dataset} ({root}): grey colour and clipped depth maps {opts.size}, '
                       f'depth {opts.min_depth_m}-{opts.max_depth_m} m; subjects {which}',
            'sizes': {k: int(len(v['y'])) for k, v in out.items()},
            'input_shapes': {m: list(out['train'][m].shape[1:]) for m in ('color', 'depth')}}
    return {'splits': out, 'info': info, 'modalities': ('color', 'depth'),
            'num_classes': len(module.CLASS_NAMES)}


def run_probe(cfg: ProbeConfig, *, out_dir: Path | None = None, data_root: Path | None = None,
              log: Callable[[str], None] | None = print) -> ProbeResult:
    """
    Train the CAEs, the bimodal CAE and the supervised baselines; fill the table.

    With ``out_dir`` the two figures are written there (PNG, atomically).
    """
    from centralnet_ros.encoders.base import EncoderConfig, ModalityEncoder
    log = log or (lambda s: None)
    timings: dict[str, float] = {}

    def timed(name, fn):
        start = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - start, 1)
        log(f'{name}: {timings[name]:.1f} s')
        return value

    loaded = timed('load_data', lambda: load_probe_data(cfg, data_root))
    d = loaded['splits']
    mods, k = tuple(loaded['modalities']), int(loaded['num_classes'])
    y = {s: d[s]['y'] for s in d}
    table: dict[str, dict[str, float]] = {r: {} for r in ROWS}
    val_table: dict[str, dict[str, float]] = {r: {} for r in ROWS}

    def record(row, col, res):
        table[row][col] = round(100.0 * res['test_accuracy'], 2)
        val_table[row][col] = round(100.0 * res['val_accuracy'], 2)
        log(f'{row} [{col}]: test {table[row][col]:.2f} %  (val {val_table[row][col]:.2f} %)')

    # 1. raw input
    for m in mods:
        res = timed(f'linear_raw_{m}', lambda: linear_probe(
            *[a for s in ('train', 'val', 'test') for a in (d[s][m].reshape(len(y[s]), -1), y[s])],
            num_classes=k, epochs=cfg.linear_epochs, seed=cfg.seed))
        record('linear_raw', m, res)

    # 2. unimodal denoising CAEs
    caes: dict[str, ConvAutoEncoder] = {}
    cae_loss = {}
    for m in mods:
        torch.manual_seed(cfg.seed)
        cae = ConvAutoEncoder(CAEConfig(list(d['train'][m].shape[1:]), channels=list(cfg.cae_channels),
                                        denoise_p=cfg.denoise_p))
        hist = timed(f'cae_{m}', lambda: train_cae(cae, d['train'][m], epochs=cfg.cae_epochs,
                                                   batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, log=log))
        cae_loss[m] = round(hist[-1]['loss'], 4)
        caes[m] = cae
        feats = [encode_array(cae.encode, d[s][m]) for s in ('train', 'val', 'test')]
        res = timed(f'linear_cae_{m}', lambda: linear_probe(
            feats[0], y['train'], feats[1], y['val'], feats[2], y['test'], num_classes=k,
            epochs=cfg.linear_epochs, seed=cfg.seed))
        record('linear_cae', m, res)

    # 3. bimodal CAE, first layers from the unimodal CAEs
    torch.manual_seed(cfg.seed)
    bimodal = BimodalCAE(BimodalCAEConfig({m: caes[m].config for m in mods}, shared_dim=cfg.shared_dim,
                                          absent_threshold=cfg.absent_threshold))
    bimodal.init_from_unimodal(caes)
    bi_hist = timed('bimodal_cae', lambda: train_bimodal(
        bimodal, {m: d['train'][m] for m in mods}, epochs=cfg.bimodal_epochs, batch_size=cfg.batch_size,
        lr=cfg.lr, denoise_p=cfg.denoise_p, seed=cfg.seed, log=log))

    def shared_features(split: str, mods: tuple[str, ...]) -> np.ndarray:
        n = len(y[split])
        out = []
        with torch.inference_mode():
            for start in range(0, n, 512):
                inputs = {m: torch.from_numpy(d[split][m][start:start + 512]) for m in mods}
                out.append(bimodal.shared(inputs).numpy())
        return np.concatenate(out)

    for present, col in (((mods[0],), mods[0]), ((mods[1],), mods[1]), (mods, 'both')):
        feats = [shared_features(s, present) for s in ('train', 'val', 'test')]
        res = timed(f'linear_shared_{col}', lambda: linear_probe(
            feats[0], y['train'], feats[1], y['val'], feats[2], y['test'], num_classes=k,
            epochs=cfg.linear_epochs, seed=cfg.seed))
        record('linear_shared', col, res)

    # 4. CAE architecture supervised, 5. CNN
    for m in mods:
        torch.manual_seed(cfg.seed)
        clf = CAEClassifier(caes[m].config, k)
        fit = timed(f'cae_supervised_{m}', lambda: train_classifier(
            clf, d['train'][m], y['train'], x_val=d['val'][m], y_val=y['val'], epochs=cfg.supervised_epochs,
            batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, log=log, desc=f'CAE-arch {m}'))
        record('cae_supervised', m, {'val_accuracy': fit['val_accuracy'],
                                     'test_accuracy': _accuracy(clf, d['test'][m], y['test'])})
        torch.manual_seed(cfg.seed)
        cnn = ModalityEncoder(EncoderConfig('cnn2d', list(d['train'][m].shape[1:]), list(cfg.cnn_widths),
                                            head_dropout=0.2), k)
        fit = timed(f'cnn_{m}', lambda: train_classifier(
            cnn, d['train'][m], y['train'], x_val=d['val'][m], y_val=y['val'], epochs=cfg.supervised_epochs,
            batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, log=log, desc=f'CNN {m}'))
        record('cnn', m, {'val_accuracy': fit['val_accuracy'],
                          'test_accuracy': _accuracy(cnn, d['test'][m], y['test'])})

    figures = {}
    if out_dir is not None:
        out_dir = Path(out_dir)
        figures['denoising'] = plot_denoising(caes, d['test'], out_dir / 'probing_denoising.png',
                                              corruption=cfg.figure_corruption, seed=cfg.seed).name
        figures['cross_modal'] = plot_cross_modal(bimodal, d['test'], out_dir / 'probing_cross_modal.png').name
    info = dict(loaded['info'])
    info['cae_final_mse'] = cae_loss
    info['bimodal_final_summed_mse'] = round(bi_hist[-1]['loss'], 4)
    info['modalities'] = list(mods)
    info['cae_middle_shapes'] = {m: list(caes[m].config.middle_shape) for m in mods}
    info['cae_layers'] = {m: {'kernels': caes[m].config.kernels, 'strides': caes[m].config.strides}
                          for m in mods}
    return ProbeResult(config=dataclasses.asdict(cfg), table=table, val_table=val_table, timings=timings,
                       data=info, figures=figures)


# ------------------------------------------------------------------------------ figures

def _examples(y: np.ndarray, per: int = 1, most: int = 12) -> np.ndarray:
    """Return the first test example of each class present (at most ``most`` classes)."""
    return np.array([np.flatnonzero(y == c)[:per] for c in np.unique(y)[:most]]).reshape(-1)


def _modalities(test: dict) -> tuple[str, str]:
    return tuple(m for m in test if m != 'y')


@torch.inference_mode()
def plot_denoising(caes: dict[str, ConvAutoEncoder], test: dict, path: Path, *, corruption: float = 0.5,
                   seed: int = 0) -> Path:
    """Figure 7: rows clean / corrupted (pixel dropout) / reconstructed, for each modality."""
    plt = pyplot()
    idx = _examples(test['y'])
    gen = torch.Generator().manual_seed(seed)
    mods = _modalities(test)
    fig, axes = plt.subplots(6, len(idx), figsize=(1.1 * len(idx), 7.2))
    for k, m in enumerate(mods):
        clean = torch.from_numpy(test[m][idx])
        noisy = pixel_dropout(clean, corruption, generator=gen)
        recon = caes[m].eval()(noisy)
        for r, (name, arr) in enumerate((('clean', clean), (f'{int(corruption * 100)} % dropped', noisy),
                                         ('denoised', recon))):
            for j in range(len(idx)):
                ax = axes[3 * k + r, j]
                img = arr[j, 0].numpy()
                ax.imshow(img, cmap='gray', origin='lower' if m == 'audio' else 'upper',
                          vmin=float(clean[j].min()), vmax=float(clean[j].max()))
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    ax.set_ylabel(f'{m}\n{name}', fontsize=7)
    shapes = ', '.join(f'{m} {"x".join(map(str, test[m].shape[2:]))}' for m in mods)
    fig.suptitle(f'Denoising CAE on test pairs ({shapes})', fontsize=9)
    return save_figure(fig, path, dpi=110)


@torch.inference_mode()
def plot_cross_modal(model: BimodalCAE, test: dict, path: Path) -> Path:
    """Figure 9: each modality, and its reconstruction by the bimodal CAE from the other alone."""
    plt = pyplot()
    idx = _examples(test['y'])
    model.eval()
    a, b = _modalities(test)
    x = {m: torch.from_numpy(test[m][idx]) for m in (a, b)}
    a_from_b = model({b: x[b]}).reconstructions[a]
    b_from_a = model({a: x[a]}).reconstructions[b]
    rows = ((a, f'{a} (input)', x[a]), (a, f'{a} from\n{b} alone', a_from_b),
            (b, f'{b} (input)', x[b]), (b, f'{b} from\n{a} alone', b_from_a))
    fig, axes = plt.subplots(len(rows), len(idx), figsize=(1.1 * len(idx), 5.0))
    for r, (m, name, arr) in enumerate(rows):
        for j in range(len(idx)):
            ax = axes[r, j]
            ref = x[m][j, 0].numpy()
            ax.imshow(arr[j, 0].numpy(), cmap='gray', origin='lower' if m == 'audio' else 'upper',
                      vmin=float(ref.min()), vmax=float(ref.max()))
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=7)
            if r == 0:
                ax.set_title(str(int(test['y'][idx[j]])), fontsize=8)
    fig.suptitle('Bimodal CAE: one modality reconstructed from the other (test pairs)', fontsize=9)
    return save_figure(fig, path, dpi=110)


# ------------------------------------------------------------------------------ report

def render_markdown(result: ProbeResult, *, command: str = '', machine: str = '') -> str:
    t, v = result.table, result.val_table
    cfg = result.config

    def cell(row, col, table):
        return f'{table[row][col]:.2f}' if col in table[row] else '--'

    shapes = result.data['input_shapes']
    a, b = result.data.get('modalities', list(shapes))
    dataset = cfg.get('dataset', 'avmnist')
    lines = [f'# Probing table: auto-encoder representations on {dataset}', '',
             'Test accuracy (%) of each probe; validation accuracy in brackets. '
             f'{result.data["sizes"]["train"]} training / {result.data["sizes"]["val"]} validation / '
             f'{result.data["sizes"]["test"]} test pairs; seed {cfg["seed"]}; one run.', '',
             f'| | {a} ({"x".join(map(str, shapes[a]))}) | {b} ({"x".join(map(str, shapes[b]))}) | {a} + {b} |',
             '|---|---|---|---|']
    for row, text in ROWS.items():
        both = f'{cell(row, "both", t)} ({cell(row, "both", v)})' if 'both' in t[row] else ''
        lines.append(f'| {text} | {cell(row, a, t)} ({cell(row, a, v)}) | '
                     f'{cell(row, b, t)} ({cell(row, b, v)}) | {both} |')
    pca = (f'; PCA kept {result.data["pca_components"]} components' if 'pca_components' in result.data else '')
    lines += ['', '## Setup', '',
              f'- data: {result.data["dataset"]}{pca}.',
              f'- CAE: channels {cfg["cae_channels"]}, VALID convolutions, layers '
              f'{json.dumps(result.data["cae_layers"])}; '
              f'middle layer {json.dumps(result.data["cae_middle_shapes"])}; denoising pixel dropout '
              f'{cfg["denoise_p"]}; {cfg["cae_epochs"]} epochs, Adam lr {cfg["lr"]}; final training MSE '
              f'{json.dumps(result.data["cae_final_mse"])}.',
              f'- bimodal CAE: shared layer {cfg["shared_dim"]} units (sum of the two middle layers after a '
              f'linear map each), convolutions initialised from the unimodal CAEs; modality dropout with '
              f'threshold tau = {cfg["absent_threshold"]} (centralnet_ros/representation/bimodal.py gives the '
              f'rule); {cfg["bimodal_epochs"]} epochs; final summed MSE {result.data["bimodal_final_summed_mse"]}.',
              f'- linear probes: softmax regression, standardised features, Adam, {cfg["linear_epochs"]} epochs, '
              'best validation epoch. Supervised rows: '
              f'{cfg["supervised_epochs"]} epochs, Adam lr {cfg["lr"]}, best validation epoch.',
              f'- reference: {REPORT_REFERENCE}',
              f'- wall time: {sum(result.timings.values()) / 60:.1f} min ('
              + ', '.join(f'{k} {v:.0f} s' for k, v in result.timings.items()) + ')']
    if result.figures:
        lines += ['', '## Figures', '']
        lines += [f'- {name}: `{Path(p).name}`' for name, p in result.figures.items()]
        lines += ['', '![denoising](probing_denoising.png)', '', '![cross-modal](probing_cross_modal.png)']
    if machine or command:
        lines += ['', '## Provenance', '']
        if machine:
            lines.append(f'- machine: {machine}')
        if command:
            lines.append(f'- command: `{command}`')
    return '\n'.join(lines) + '\n'


def write_results(result: ProbeResult, out_dir: Path, *, command: str = '', machine: dict | None = None,
                  stem: str = 'probing') -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` in ``out_dir`` (:func:`centralnet_ros.machine.write_results`)."""
    from centralnet_ros.machine import write_results as write
    machine = machine or {}
    mline = ', '.join(f'{k}={v}' for k, v in machine.items())
    payload = {**dataclasses.asdict(result), 'machine': machine, 'rows': ROWS}
    write(out_dir, stem, payload, markdown=render_markdown(result, command=command, machine=mline), command=command)
    return Path(out_dir) / f'{stem}.json', Path(out_dir) / f'{stem}.md'
