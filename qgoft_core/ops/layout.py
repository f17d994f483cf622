"""Where the Givens rotations of one GOFT layer sit.

GOFT uses d - 1 rotations arranged as a tree reduction over ceil(log2 d) levels.
Level r (1-based) pairs the indices (2^r k, 2^r k + 2^(r-1)); a pair exists only
if its second index is < d. That is exactly the "carry rule" for d that is not a
power of two: an odd index out at some level is carried unpaired to the next.

The fast forward never walks the levels one by one. Levels 1..k only mix indices
inside aligned groups of 2^k, so they compose into a block-diagonal operator of
2^k x 2^k blocks; the survivors of those levels (every 2^k-th index) form a
smaller tree of the same kind. A `StagePlan` records, for one such group of
levels, which pair fills which 2 x 2 slot of which block.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch


def num_levels(d: int) -> int:
    """ceil(log2 d): the depth of the tree for d inputs."""
    check_dim(d)
    return max(1, math.ceil(math.log2(d)))


def check_dim(d: int) -> None:
    if not isinstance(d, int) or d < 2:
        raise ValueError(f"a GOFT rotation needs at least 2 input features, got d={d!r}")


@lru_cache(maxsize=None)
def tree_pairs(d: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Pairs (i, j) per level, level 1 first; d - 1 pairs in total.

    The parameter order of every adapter in this project is this order flattened:
    level by level, and by increasing first index within a level.
    """
    levels = []
    for r in range(1, num_levels(d) + 1):
        stride, half = 2**r, 2 ** (r - 1)
        levels.append(tuple((a, a + half) for a in range(0, d, stride) if a + half < d))
    return tuple(levels)


@lru_cache(maxsize=None)
def pair_index(d: int) -> dict[tuple[int, int], int]:
    """(level, first index) -> position in the flat parameter vector."""
    index, p = {}, 0
    for level, pairs in enumerate(tree_pairs(d), start=1):
        for i, _ in pairs:
            index[(level, i)] = p
            p += 1
    return index


@dataclass(frozen=True)
class StagePlan:
    """Levels first_level .. first_level + levels - 1, fused into blocks.

    The stage works on the survivor vector x[::2^(first_level - 1)] of length
    `length`, padded to groups * block entries.
    """

    length: int
    levels: int
    block: int
    groups: int
    # For each 2 x 2 slot: the flat positions of its 4 entries in a
    # (levels, groups, block, block) tensor and the parameter it reads
    # (d - 1, the identity row of the table: the pair falls outside d).
    slot_positions: torch.Tensor  # (slots, 4) int64
    slot_params: torch.Tensor  # (slots,) int64


@lru_cache(maxsize=None)
def stage_plans(d: int, block_levels: int = 4) -> tuple[StagePlan, ...]:
    """Split the tree of d inputs into stages of at most `block_levels` levels."""
    check_dim(d)
    if block_levels < 1:
        raise ValueError(f"block_levels must be >= 1, got {block_levels}")
    total = num_levels(d)
    index = pair_index(d)
    identity_slot = d - 1
    plans = []
    done = 0
    while done < total:
        levels = min(block_levels, total - done)
        stride = 2**done
        length = -(-d // stride)
        block = 2**levels
        groups = -(-length // block)
        positions, params = [], []
        for local in range(1, levels + 1):
            step, half = 2**local, 2 ** (local - 1)
            for g in range(groups):
                for i in range(0, block, step):
                    j = i + half
                    a, b = g * block + i, g * block + j  # indices in the survivor vector
                    if b < length:
                        p = index[(done + local, a * stride)]
                    else:
                        p = identity_slot
                    base = ((local - 1) * groups + g) * block * block
                    positions.append([base + i * block + i, base + i * block + j,
                                      base + j * block + i, base + j * block + j])
                    params.append(p)
        plans.append(StagePlan(length, levels, block, groups,
                               torch.tensor(positions, dtype=torch.int64),
                               torch.tensor(params, dtype=torch.int64)))
        done += levels
    return tuple(plans)
