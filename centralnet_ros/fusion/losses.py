"""
CentralNet's loss: the loss of the fused output plus every unimodal loss.

Single-label tasks use cross-entropy; multi-label tasks the weighted binary
cross-entropy of the paper's equation (2), positive term weighted by 2::

    L = -(1/N) sum_n sum_c [ 2 * y log sigma(s) + (1 - y) log(1 - sigma(s)) ]
"""
from __future__ import annotations

from centralnet_ros.fusion.base import FusionOutput
import torch
import torch.nn.functional as F

MULTILABEL_POSITIVE_WEIGHT = 2.0


def task_loss(logits: torch.Tensor, target: torch.Tensor, task: str = 'multiclass', *,
              label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy (``multiclass``, targets smoothed by ``label_smoothing``) or the weighted BCE (``multilabel``)."""
    if task == 'multiclass':
        return F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    if label_smoothing:
        raise ValueError(f'label_smoothing goes with multiclass tasks, not {task!r}')
    if task == 'multilabel':
        pos_weight = torch.full((logits.shape[1],), MULTILABEL_POSITIVE_WEIGHT, device=logits.device)
        per_class = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), pos_weight=pos_weight,
                                                       reduction='none')
        return per_class.sum(1).mean()
    raise ValueError(f'task must be "multiclass" or "multilabel", got {task!r}')


def fusion_loss(output: FusionOutput, target: torch.Tensor, *, task: str = 'multiclass',
                central_weight: float = 1.0, unimodal_weight: float = 1.0,
                label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """
    Total loss and its parts ``{'fused': .., '<modality>': ..}`` (parts as floats for logging).

    An ensemble's output (``output.members``): the sum of its members' losses, parts averaged over them.
    """
    if output.members:
        results = [fusion_loss(m, target, task=task, central_weight=central_weight, unimodal_weight=unimodal_weight,
                               label_smoothing=label_smoothing) for m in output.members]
        parts = {k: sum(r[1][k] for r in results) / len(results) for k in results[0][1]}
        return sum(r[0] for r in results), parts
    fused = task_loss(output.logits, target, task, label_smoothing=label_smoothing)
    total = central_weight * fused
    parts = {'fused': float(fused.detach())}
    for name, logits in output.unimodal.items():
        loss = task_loss(logits, target, task, label_smoothing=label_smoothing)
        total = total + unimodal_weight * loss
        parts[name] = float(loss.detach())
    return total, parts
