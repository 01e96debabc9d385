"""
PNG figures of a comparison.

Fusion weights per level (the paper's Fig. 2), their evolution during training (Fig. 3),
and accuracy per method.
"""
from __future__ import annotations

from pathlib import Path

from centralnet_ros.config import atomic_write_bytes
import numpy as np


def pyplot():
    """Return matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: Path, *, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=dpi, bbox_inches='tight')
    pyplot().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def _keys(levels: list[dict]) -> list[str]:
    keys: list[str] = []
    for level in levels:
        for k in level['share']:
            if k not in keys:
                keys.append(k)
    return [k for k in keys if k != 'central'] + (['central'] if any('central' in lv['share'] for lv in levels) else [])


def plot_fusion_weights(weight_sets: list[dict], path: Path, title: str = 'CentralNet fusion weights') -> Path:
    """Stacked bars: per level, each modality's and the central share (mean over runs)."""
    plt = pyplot()
    levels = weight_sets[0]['levels']
    keys = _keys(levels)
    names = [str(lv['level']) for lv in levels]
    shares = np.array([[[ws['levels'][i]['share'].get(k, 0.0) for k in keys] for i in range(len(levels))]
                       for ws in weight_sets])                              # (runs, levels, keys)
    mean = shares.mean(0)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(levels), 3.6))
    bottom = np.zeros(len(levels))
    for j, key in enumerate(keys):
        ax.bar(names, mean[:, j] * 100, bottom=bottom * 100, label=key)
        for i, v in enumerate(mean[:, j]):
            if v > 0.06:
                ax.text(i, (bottom[i] + v / 2) * 100, f'{v * 100:.0f}%', ha='center', va='center', fontsize=8)
        bottom += mean[:, j]
    ax.set_xlabel('fusion level')
    ax.set_ylabel('share of |weight| (%)')
    ax.set_ylim(0, 100)
    ax.set_title(f'{title} (mean of {len(weight_sets)} runs)', fontsize=10)
    ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path)


def plot_fusion_weight_evolution(history: list[dict], path: Path,
                                 title: str = 'fusion weights during training') -> Path:
    """One panel per level: each weight's share against the epoch."""
    plt = pyplot()
    records = [h for h in history if 'fusion_weights' in h]
    if not records:
        raise ValueError('no fusion weights were logged in this history')
    levels = records[0]['fusion_weights']['levels']
    keys = _keys(levels)
    fig, axes = plt.subplots(1, len(levels), figsize=(2.6 * len(levels), 2.8), sharey=True, squeeze=False)
    epochs = [h['epoch'] for h in records]
    for i, ax in enumerate(axes[0]):
        for key in keys:
            values = [h['fusion_weights']['levels'][i]['share'].get(key) for h in records]
            if values[0] is not None:
                ax.plot(epochs, np.array(values) * 100, label=key)
        ax.set_title(f'level {levels[i]["level"]}', fontsize=9)
        ax.set_xlabel('epoch')
    axes[0][0].set_ylabel('share (%)')
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10, y=1.04)
    return save_figure(fig, path)


def plot_accuracy(results: dict[str, list[float]], path: Path, metric: str = 'accuracy') -> Path:
    """Mean +- std per method with the individual runs as dots."""
    plt = pyplot()
    methods = list(results)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(methods), 3.4))
    for i, m in enumerate(methods):
        v = np.asarray(results[m]) * 100
        ax.bar(i, v.mean(), yerr=v.std(ddof=1) if len(v) > 1 else 0, capsize=4, alpha=0.6)
        ax.scatter(np.full(len(v), i), v, s=10, color='black', zorder=3)
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha='right')
    ax.set_ylabel(f'test {metric} (%)')
    lo = min(np.min(results[m]) for m in methods) * 100
    ax.set_ylim(max(0, lo - 5), 100)
    return save_figure(fig, path)


def plot_confusion(cm: np.ndarray, labels: list[str], path: Path, title: str = 'confusion matrix', *,
                   columns: list[str] | None = None) -> Path:
    """
    Confusion matrix: rows true, columns predicted (``columns``, default ``labels``).

    Each non-empty cell shows its count and its row percentage; the colour is the row
    percentage, with a colour bar.
    """
    plt = pyplot()
    cm = np.asarray(cm)
    columns = list(labels if columns is None else columns)
    n, k = len(labels), len(columns)
    fig, ax = plt.subplots(figsize=(2.2 + 0.5 * k, 1.4 + 0.45 * n))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    image = ax.imshow(norm * 100, cmap='Blues', vmin=0, vmax=100, aspect='auto')
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='row %')
    small = 5 if max(n, k) > 14 else 6
    for i, j in zip(*np.nonzero(cm)):
        ax.text(j, i, f'{cm[i, j]}\n{norm[i, j] * 100:.0f}%', ha='center', va='center', fontsize=small,
                color='white' if norm[i, j] > 0.6 else 'black')
    ax.set_xticks(range(k), columns, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)
