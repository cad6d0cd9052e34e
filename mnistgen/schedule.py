"""Learning-rate schedules shared by the VAE and classifier trainers (pure Python)."""

from __future__ import annotations

import math

LR_FINAL_RATIO = 0.05  # cosine decay ends at lr * this


def cosine_lr(lr: float, epoch: int, epochs: int) -> float:
    """Cosine decay from `lr` at the first epoch to lr * LR_FINAL_RATIO at the last (SGDR's
    annealing without restarts, Loshchilov & Hutter, ICLR 2017)."""
    if epochs <= 1:
        return lr
    final = lr * LR_FINAL_RATIO
    return final + 0.5 * (lr - final) * (1 + math.cos(math.pi * epoch / (epochs - 1)))
