"""Helpers shared by every adapter method (and by code that measures them)."""
from __future__ import annotations

from torch import nn


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) numbers of parameters of `module`.

    A tensor reached under several names (tied embeddings, a frozen base shared
    by several wrappers) is counted once.
    """
    seen: set[int] = set()
    trainable = total = 0
    for p in module.parameters():
        if id(p) in seen:  # parameters() dedupes already; a custom override might not
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total
