"""Givens playground: a small numpy toy of (quasi-)Givens orthogonal fine-tuning.

The tree layout and the hyperspherical energy are the library's
(`qgoft_core.ops.layout.tree_pairs`, `qgoft_core.metrics.hyperspherical_energy`);
the operators are built densely in numpy, which is plenty for d <= 4.

Conventions (PyTorch row-vector layout, see docs/qgoft-method.md section 1):

* A neuron set is ``W`` of shape ``(n, d)``: each row is one neuron.
* The input-side operator is ``M = P_1 P_2 ... P_L`` where level ``P_r`` is a
  product of disjoint Givens rotations on the pairs of ``tree_pairs(d)[r-1]``.
* The adapted neurons are ``W' = W @ M.T``: every neuron ``w`` becomes ``M w``,
  so all neurons are moved by the same map.  When ``M`` is orthogonal, every
  pairwise angle (hence the hyperspherical energy) is kept.

``givens_operator`` / ``quasi_operator`` take angles in **radians**;
``playground_view`` (the UI-facing entry point) takes angles in **degrees**,
because sliders in degrees are easier to read.

qGOFT's penalty ``lambda * sum <alpha, beta>^2`` only asks each block's two
columns to be perpendicular; their lengths are free. The quasi kind of
``playground_view`` therefore has column scales as well as a shear: with the
shear at 0 the penalty is exactly 0, yet the lengths compound through the
tree (input i is scaled by the product over the levels that touch it, with
the angles at 0) and the energy moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go

from qgoft_core import metrics
from qgoft_core.ops import layout

UpdateKind = Literal["givens", "lora", "quasi"]

# Two unit neurons closer than this (chord length) make 1/||w_i - w_j|| blow up;
# the Gram route also loses relative precision there, so we refuse instead.
MIN_NEURON_DISTANCE = 1e-6

BASE_COLOR = "#4C78A8"  # blue: the pretrained neurons
NEW_COLOR = "#F58518"  # orange: the adapted neurons
GUIDE_COLOR = "rgba(120,120,120,0.35)"
FIG_HEIGHT = 520


# ----------------------------------------------------------------------------
# The GOFT tree layout and its operators
# ----------------------------------------------------------------------------
def tree_pairs(d: int) -> list[list[tuple[int, int]]]:
    """Index pairs of each level of the GOFT tree reduction (with carry rule).

    The library's `layout.tree_pairs` as lists: level r (1-based) pairs
    (2^r k, 2^r k + 2^(r-1)) whenever the second index is < d, which is the
    carry rule (an odd index out is carried unpaired to the next level).
    ceil(log2 d) levels and d - 1 pairs in total.
    """
    if int(d) != d or d < 2:
        raise ValueError(f"d must be an integer >= 2, got {d!r}")
    return [list(level) for level in layout.tree_pairs(int(d))]


def _flat_pairs(d: int) -> list[tuple[int, int]]:
    return [p for level in tree_pairs(d) for p in level]


def _level_slices(d: int) -> list[slice]:
    """Where each level's parameters sit in the flat (level-by-level) ordering."""
    out, start = [], 0
    for level in tree_pairs(d):
        out.append(slice(start, start + len(level)))
        start += len(level)
    return out


def _check_upto(d: int, upto_level: int | None) -> int:
    n_levels = len(tree_pairs(d))
    if upto_level is None:
        return n_levels
    if not 0 <= upto_level <= n_levels:
        raise ValueError(f"upto_level must be in 0..{n_levels} for d={d}, got {upto_level}")
    return int(upto_level)


def quasi_operator(d: int, blocks: np.ndarray, upto_level: int | None = None) -> np.ndarray:
    """M = P_1 ... P_k with each pair's 2x2 block free (qGOFT).

    ``blocks`` has shape (d-1, 2, 2), ordered like the angles (level by level).
    Block b = [alpha beta] (columns) takes the place of [[c, -s], [s, c]] on
    rows/columns (i, j): M[i,i]=b00, M[i,j]=b01, M[j,i]=b10, M[j,j]=b11.
    """
    blocks = np.asarray(blocks, dtype=np.float64)
    pairs = _flat_pairs(d)
    if blocks.shape != (len(pairs), 2, 2):
        raise ValueError(f"blocks must have shape {(len(pairs), 2, 2)}, got {blocks.shape}")
    k = _check_upto(d, upto_level)
    M = np.eye(d)
    for sl, level in zip(_level_slices(d)[:k], tree_pairs(d)[:k]):
        P = np.eye(d)  # the pairs of one level are disjoint, so they fill one matrix
        for (i, j), b in zip(level, blocks[sl]):
            P[np.ix_([i, j], [i, j])] = b
        M = M @ P  # M = P_1 P_2 ... P_k
    return M


def givens_blocks(angles: Sequence[float] | np.ndarray) -> np.ndarray:
    """The (m, 2, 2) rotation blocks [[cos, -sin], [sin, cos]] for radians ``angles``."""
    t = np.asarray(angles, dtype=np.float64).reshape(-1)
    c, s = np.cos(t), np.sin(t)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def givens_operator(
    d: int, angles: Sequence[float] | np.ndarray, upto_level: int | None = None
) -> np.ndarray:
    """Strict GOFT operator M = P_1 ... P_L (orthogonal) from d-1 angles in radians.

    ``upto_level=k`` multiplies only the first k levels (k=0 gives the identity),
    for stepping through the tree one level at a time.
    """
    angles = np.asarray(angles, dtype=np.float64).reshape(-1)
    if angles.size != d - 1:
        raise ValueError(f"need d-1 = {d - 1} angles for d={d}, got {angles.size}")
    return quasi_operator(d, givens_blocks(angles), upto_level)


# ----------------------------------------------------------------------------
# Geometry of a neuron set
# ----------------------------------------------------------------------------
def _unit_gram(W: np.ndarray) -> np.ndarray:
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (n neurons x d), got shape {W.shape}")
    norms = np.linalg.norm(W, axis=1)
    if np.any(norms <= 1e-12):
        raise ValueError(f"zero-length neuron(s) at rows {np.flatnonzero(norms <= 1e-12).tolist()}")
    U = W / norms[:, None]
    return np.clip(U @ U.T, -1.0, 1.0)  # clip: rounding can push |cos| past 1


def hyperspherical_energy(W: np.ndarray, min_distance: float = MIN_NEURON_DISTANCE) -> float:
    """HE(W) = sum_{i != j} 1 / ||w^_i - w^_j||  (s = 1, as in OFT), in float64.

    The library's `metrics.hyperspherical_energy` over every neuron, with its
    guard on: raises ``ValueError`` for a zero-length neuron or two unit neurons
    closer than ``min_distance`` (near-duplicates: the energy is effectively
    infinite and the Gram route no longer gives an accurate distance).
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (n neurons x d), got shape {W.shape}")
    return metrics.hyperspherical_energy(W, max_neurons=None, min_distance=min_distance)


def pairwise_angles(W: np.ndarray) -> np.ndarray:
    """n x n matrix of angles between neurons (rows), in degrees (diagonal 0).

    arccos of the clipped cosine: accurate to ~1e-6 degrees near 0 and 180.
    """
    A = np.degrees(np.arccos(_unit_gram(W)))
    np.fill_diagonal(A, 0.0)
    return A


# ----------------------------------------------------------------------------
# Neurons and non-orthogonal updates to compare against
# ----------------------------------------------------------------------------
def default_neurons(n: int = 6, d: int = 2, seed: int = 0) -> np.ndarray:
    """n unit-norm neurons in R^d, well spread so no two nearly coincide.

    d = 2: evenly spaced on the circle with jitter; d >= 3: random directions,
    rejecting any closer than ~20 degrees to one already chosen (so the energy
    is finite and the picture readable).
    """
    if n < 1 or d < 2:
        raise ValueError("need n >= 1 and d >= 2")
    rng = np.random.default_rng(seed)
    if d == 2:
        step = 2 * np.pi / n
        phi = rng.uniform(0, 2 * np.pi) + step * (np.arange(n) + rng.uniform(-0.3, 0.3, n))
        return np.stack([np.cos(phi), np.sin(phi)], axis=1)
    min_cos = math.cos(math.radians(20.0))
    chosen: list[np.ndarray] = []
    for _ in range(20000):
        v = rng.standard_normal(d)
        v /= np.linalg.norm(v)
        if all(float(v @ u) < min_cos for u in chosen):
            chosen.append(v)
            if len(chosen) == n:
                break
    while len(chosen) < n:  # too many neurons for the spacing: accept the rest as drawn
        v = rng.standard_normal(d)
        chosen.append(v / np.linalg.norm(v))
    return np.array(chosen)


def lora_like_update(W: np.ndarray, strength: float, seed: int = 0) -> np.ndarray:
    """W + strength * u v^T: a rank-1 additive (LoRA-style) update.

    u ~ N(0, 1)^n (one coefficient per neuron), v a fixed-seed unit vector in
    R^d, so each unit neuron is pushed by about ``strength`` along the same
    direction v -- which changes angles, norms and the energy.
    """
    W = np.asarray(W, dtype=np.float64)
    rng = np.random.default_rng(seed + 12345)  # offset: differ from default_neurons' stream
    u = rng.standard_normal(W.shape[0])
    v = rng.standard_normal(W.shape[1])
    v /= np.linalg.norm(v)
    return W + strength * np.outer(u, v)


def sheared_block_update(
    W: np.ndarray, shear: float, pair: tuple[int, int] = (0, 1), angle: float = 0.0
) -> np.ndarray:
    """W @ Q.T with one quasi-Givens block on ``pair`` that is not orthogonal.

    The block is R(angle) @ [[1, shear], [0, 1]]: columns alpha = R e_0 and
    beta = R (shear, 1), so <alpha, beta> = shear (what qGOFT's penalty
    lambda * <alpha, beta>^2 pushes to 0) and ||beta|| = sqrt(1 + shear^2).
    """
    W = np.asarray(W, dtype=np.float64)
    i, j = pair
    if i == j or not (0 <= i < W.shape[1] and 0 <= j < W.shape[1]):
        raise ValueError(f"pair must be two distinct indices < d={W.shape[1]}, got {pair}")
    Q = np.eye(W.shape[1])
    Q[np.ix_([i, j], [i, j])] = _sheared_rotation(angle, shear)
    return W @ Q.T


def _sheared_rotation(angle: float, shear: float) -> np.ndarray:
    return givens_blocks([angle])[0] @ np.array([[1.0, shear], [0.0, 1.0]])


def quasi_block_factor(shear: float = 0.0, alpha_scale: float = 1.0, beta_scale: float = 1.0) -> np.ndarray:
    """The 2x2 factor F the playground puts after each block's rotation: block = R(theta) F.

    F = [[1, shear], [0, 1]] diag(alpha_scale, beta_scale), so the block's columns are
    alpha = alpha_scale R e_0 and beta = beta_scale R (shear, 1):
    <alpha, beta> = alpha_scale * beta_scale * shear (what the penalty sees),
    ||alpha|| = alpha_scale and ||beta|| = beta_scale * sqrt(1 + shear^2) (what it does not).
    """
    return np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([float(alpha_scale), float(beta_scale)])


def block_columns(blocks: np.ndarray) -> dict[str, np.ndarray]:
    """Per block: <alpha, beta>, ||alpha||, ||beta|| of blocks of shape (m, 2, 2) (columns alpha, beta)."""
    blocks = np.asarray(blocks, dtype=np.float64)
    alpha, beta = blocks[..., :, 0], blocks[..., :, 1]
    return {"inner": np.sum(alpha * beta, axis=-1), "alpha_norm": np.linalg.norm(alpha, axis=-1),
            "beta_norm": np.linalg.norm(beta, axis=-1)}


def input_scales_at_zero_angles(d: int, alpha_scale: float, beta_scale: float,
                                upto_level: int | None = None) -> np.ndarray:
    """With every angle 0 and no shear M is diagonal: input i is scaled by the product of the
    column lengths of the blocks that touch it (alpha's for the first index of a pair, beta's for
    the second) over the first ``upto_level`` levels (None = all). Index 0 is the first of a pair
    at every level."""
    scale = np.ones(d)
    for level in tree_pairs(d)[:_check_upto(d, upto_level)]:
        for i, j in level:
            scale[i] *= alpha_scale
            scale[j] *= beta_scale
    return scale


# ----------------------------------------------------------------------------
# Figure
# ----------------------------------------------------------------------------
def _arrow_xy(P: np.ndarray) -> tuple[list[float | None], list[float | None], list[int]]:
    """Coordinates origin -> point, None-separated, plus arrow-head sizes (tips only)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    sizes: list[int] = []
    for x, y in P[:, :2]:
        xs += [0.0, float(x), None]
        ys += [0.0, float(y), None]
        sizes += [0, 13, 0]
    return xs, ys, sizes


def _figure_2d(W0: np.ndarray, W1: np.ndarray, title: str) -> go.Figure:
    fig = go.Figure()
    t = np.linspace(0, 2 * np.pi, 241)
    fig.add_trace(go.Scatter(x=np.cos(t), y=np.sin(t), mode="lines", name="unit circle",
                             line=dict(color=GUIDE_COLOR, width=1), hoverinfo="skip"))
    for P, name, color, dash in ((W0, "base neurons", BASE_COLOR, "dot"),
                                 (W1, "transformed neurons", NEW_COLOR, "solid")):
        xs, ys, sizes = _arrow_xy(P)
        # arrow-head markers rotate to follow the segment (angleref="previous")
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=name, legendgroup=name,
            line=dict(color=color, width=2, dash=dash),
            marker=dict(symbol="arrow", angleref="previous", size=sizes, color=color),
            hoverinfo="skip"))
        norms = np.linalg.norm(P, axis=1)
        fig.add_trace(go.Scatter(
            x=P[:, 0], y=P[:, 1], mode="markers+text", name=name, legendgroup=name,
            showlegend=False, text=[str(i) for i in range(len(P))], textposition="top right",
            marker=dict(color=color, size=7),
            customdata=np.stack([norms, np.degrees(np.arctan2(P[:, 1], P[:, 0]))], 1),
            hovertemplate=f"{name} %{{text}}<br>norm %{{customdata[0]:.3f}}"
                          "<br>direction %{customdata[1]:.1f}°<extra></extra>"))
    r = max(1.15, 1.1 * float(np.max(np.abs(np.vstack([W0, W1])[:, :2]))))
    fig.update_xaxes(title_text="coordinate x₀", range=[-r, r], zeroline=True)
    fig.update_yaxes(title_text="coordinate x₁", range=[-r, r], scaleanchor="x", scaleratio=1)
    fig.update_layout(title=title, height=FIG_HEIGHT, legend=dict(orientation="h", y=-0.15),
                      margin=dict(l=50, r=20, t=60, b=40))
    return fig


def _sphere_wire() -> tuple[list[float | None], list[float | None], list[float | None]]:
    xs: list[float | None] = []
    ys: list[float | None] = []
    zs: list[float | None] = []
    t = np.linspace(0, 2 * np.pi, 73)
    for lat in np.radians([-60, -30, 0, 30, 60]):  # parallels
        xs += list(np.cos(lat) * np.cos(t)) + [None]
        ys += list(np.cos(lat) * np.sin(t)) + [None]
        zs += list(np.full_like(t, np.sin(lat))) + [None]
    s = np.linspace(-np.pi / 2, np.pi / 2, 37)
    for lon in np.radians(np.arange(0, 180, 30)):  # meridians (full great circles)
        for sign in (1, -1):
            xs += list(sign * np.cos(s) * np.cos(lon)) + [None]
            ys += list(sign * np.cos(s) * np.sin(lon)) + [None]
            zs += list(np.sin(s)) + [None]
    return xs, ys, zs


def _figure_3d(W0: np.ndarray, W1: np.ndarray, title: str, projected: bool) -> go.Figure:
    fig = go.Figure()
    xs, ys, zs = _sphere_wire()
    fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", name="unit sphere",
                               line=dict(color=GUIDE_COLOR, width=1), hoverinfo="skip"))
    for P, name, color, dash in ((W0, "base neurons", BASE_COLOR, "dot"),
                                 (W1, "transformed neurons", NEW_COLOR, "solid")):
        P3 = P[:, :3]
        lx, ly, lz = [], [], []
        for p in P3:
            lx += [0.0, float(p[0]), None]
            ly += [0.0, float(p[1]), None]
            lz += [0.0, float(p[2]), None]
        fig.add_trace(go.Scatter3d(x=lx, y=ly, z=lz, mode="lines", name=name, legendgroup=name,
                                   line=dict(color=color, width=4, dash=dash), hoverinfo="skip"))
        norms = np.linalg.norm(P, axis=1)
        fig.add_trace(go.Scatter3d(
            x=P3[:, 0], y=P3[:, 1], z=P3[:, 2], mode="markers+text", name=name,
            legendgroup=name, showlegend=False, text=[str(i) for i in range(len(P))],
            marker=dict(color=color, size=4), customdata=norms,
            hovertemplate=f"{name} %{{text}}<br>norm %{{customdata:.3f}}<extra></extra>"))
        # cones at the tips make the segments read as arrows
        dirs = P3 / np.maximum(np.linalg.norm(P3, axis=1, keepdims=True), 1e-12)
        fig.add_trace(go.Cone(
            x=P3[:, 0], y=P3[:, 1], z=P3[:, 2], u=dirs[:, 0], v=dirs[:, 1], w=dirs[:, 2],
            anchor="tip", sizemode="absolute", sizeref=0.12, showscale=False,
            colorscale=[[0, color], [1, color]], legendgroup=name, showlegend=False,
            hoverinfo="skip"))
    r = max(1.15, 1.1 * float(np.max(np.abs(np.vstack([W0, W1])[:, :3]))))
    suffix = " (first 3 of 4 coords)" if projected else ""
    axis = dict(range=[-r, r])
    fig.update_layout(
        title=title + suffix, height=FIG_HEIGHT, legend=dict(orientation="h", y=-0.05),
        margin=dict(l=10, r=10, t=60, b=10),
        scene=dict(xaxis=dict(title=dict(text="x₀"), **axis), yaxis=dict(title=dict(text="x₁"), **axis),
                   zaxis=dict(title=dict(text="x₂"), **axis), aspectmode="cube"))
    return fig


def playground_figure(W_before: np.ndarray, W_after: np.ndarray, title: str = "") -> go.Figure:
    """Base (blue, dotted) and transformed (orange) neurons as arrows from the origin.

    d = 2: unit circle; d >= 3: unit-sphere wireframe, showing the first three
    coordinates (for d = 4 that is a projection, flagged in the title).
    """
    W0 = np.asarray(W_before, dtype=np.float64)
    W1 = np.asarray(W_after, dtype=np.float64)
    if W0.shape != W1.shape or W0.ndim != 2 or W0.shape[1] < 2:
        raise ValueError(f"need two (n, d>=2) arrays of equal shape, got {W0.shape}, {W1.shape}")
    if W0.shape[1] == 2:
        return _figure_2d(W0, W1, title)
    return _figure_3d(W0, W1, title, projected=W0.shape[1] > 3)


# ----------------------------------------------------------------------------
# One view of the playground (what the app shows for the current controls)
# ----------------------------------------------------------------------------
def _safe_energy(W: np.ndarray) -> float:
    try:
        return hyperspherical_energy(W)
    except ValueError:  # a slider can (rarely) collapse two neurons: show inf, don't crash
        return float("inf")


def _fmt_pairs(level: list[tuple[int, int]], angles_deg: np.ndarray) -> str:
    return ", ".join(f"$G({i},{j};\\,{a:.0f}^\\circ)$" for (i, j), a in zip(level, angles_deg))


def _fmt_vector(values: np.ndarray) -> str:
    return "(" + ",\\ ".join(f"{v:.3g}" for v in values) + ")"


def _explain(kind: str, d: int, k: int, angles_deg: np.ndarray, strength: float,
             e0: float, e1: float, rel: float, dmax: float, stepping: bool = False,
             alpha_scale: float = 1.0, beta_scale: float = 1.0, block: dict | None = None,
             op: dict | None = None) -> str:
    levels = tree_pairs(d)
    L = len(levels)
    energy = (f"**Hyperspherical energy** $\\mathrm{{HE}}=\\sum_{{i\\ne j}} 1/\\lVert\\hat w_i-\\hat w_j\\rVert$: "
              f"{e0:.4f} before, {e1:.4f} after (relative change {rel:+.2e}); "
              f"largest change of a pairwise angle: {0.0 if dmax < 1e-9 else dmax:.3g}°.")
    if kind == "lora":
        return (f"**LoRA-style update** $W' = W + s\\,u v^\\top$ with $s = {strength:g}$: every neuron "
                "is pushed along the same direction $v$ by its own amount $s\\,u_i$. This is "
                "additive, not a rotation, so lengths **and** the angles between neurons change "
                "(the Givens angles are ignored here).\n\n" + energy +
                "\n\nCompare with *givens*: there the energy does not move at all.")
    slices = _level_slices(d)
    applied = [f"- level {r + 1}: {_fmt_pairs(levels[r], angles_deg[slices[r]])}"
               + (" (this step)" if stepping and r == k - 1 else "") for r in range(k)]
    product = {1: "P_1", 2: "P_1 P_2"}.get(k, f"P_1 \\cdots P_{k}")
    carried = "" if d & (d - 1) == 0 else (
        f" Since $d={d}$ is not a power of two, an odd index is carried unpaired to the next level.")
    tree = (f"The tree for $d={d}$ has {L} level(s) and $d-1={d - 1}$ rotations.{carried} "
            + (f"Applied so far ($M = {product}$):\n" + "\n".join(applied) if k else
               "No level applied yet: $M = I$, the neurons are the pretrained ones."))
    order = ("" if k < 2 else
             f"\n\nBecause $W' = W M^\\top$, each neuron becomes $M w = {product}\\, w$: it meets "
             "the *last* level first (an input $x$ meets level 1 first, $x M$).")
    if kind == "givens":
        return ("**Givens rotation** $G(i,j;\\theta)$ turns the plane of coordinates $i, j$ by "
                "$\\theta$ and leaves the others alone; it is orthogonal, $G^\\top G = I$.\n\n"
                + tree + order + "\n\nAll neurons get the **same** orthogonal map $M$, so every "
                "pairwise angle and every length is kept.\n\n" + energy)
    block = block or {}
    op = op or {}
    inner, a_len, b_len = block.get("inner", 0.0), block.get("alpha_norm", 1.0), block.get("beta_norm", 1.0)
    penalty = block.get("penalty", 0.0)
    a, b, s = float(alpha_scale), float(beta_scale), float(strength)
    factor = (f"\\begin{{pmatrix}}1 & {s:g}\\\\ 0 & 1\\end{{pmatrix}}"
              f"\\begin{{pmatrix}}{a:g} & 0\\\\ 0 & {b:g}\\end{{pmatrix}}")
    numbers = (f"- $\\langle\\alpha,\\beta\\rangle = {inner:.4g}$ in every block, so the penalty term "
               f"$\\sum\\langle\\alpha,\\beta\\rangle^2$ over the {d - 1} blocks is **{penalty:.4g}**"
               + (" (exactly 0)" if penalty == 0 else "") + ";\n"
               f"- column lengths $\\lVert\\alpha\\rVert = {a_len:.4g}$, $\\lVert\\beta\\rVert = {b_len:.4g}$: "
               "the penalty does not look at them (qGOFT's \"flexible norm\");\n"
               f"- the operator: $\\lVert M^\\top M - I\\rVert_F = {op.get('deviation', 0.0):.3g}$, "
               f"singular values $\\sigma = {_fmt_vector(op.get('singular_values', np.ones(d)))}$.")
    changed = not (math.isfinite(rel) and abs(rel) < 1e-12)
    if k == 0:
        lesson = ""
    elif penalty == 0 and changed:
        scales = input_scales_at_zero_angles(d, a, b, k)
        lesson = ("\n\n**The penalty is exactly 0, yet the energy moves.** Perpendicular columns are not "
                  "enough: their lengths compound through the tree, so $M$ stretches the inputs "
                  "unevenly. With every angle at 0, $M$ is diagonal and input $i$ is scaled by the "
                  "product of the column lengths of the blocks that touch it, here "
                  f"$\\mathrm{{diag}}{_fmt_vector(scales)}$ (index 0 meets every level). No value of "
                  "$\\lambda$ changes this: it multiplies a term that is already 0.")
    elif penalty == 0 and (abs(a - 1) > 1e-12 or abs(b - 1) > 1e-12):
        lesson = ("\n\n**The penalty is 0 and the energy is kept here**, although $M$ is not orthogonal: "
                  "it is a rotation times one common scale (all singular values equal), which changes no "
                  "angle between neurons. Give $\\alpha$ and $\\beta$ different lengths, or take $d = 3$ "
                  "or $4$ where the lengths compound unevenly, and the energy moves.")
    elif penalty > 0:
        lesson = ("\n\nThe shear tilts $\\beta$ towards $\\alpha$; that is all the penalty "
                  "$\\lambda\\sum\\langle\\alpha,\\beta\\rangle^2$ sees and pushes back. Set the shear to 0 and "
                  "change a column length: the penalty drops to exactly 0 while the energy still moves.")
    else:
        lesson = "\n\nWith no shear and unit column lengths every block is a rotation: this is strict GOFT."
    return ("**Quasi-Givens (qGOFT)**: each $2\\times 2$ block $[\\alpha\\ \\beta]$ is free. Here "
            f"every block = rotation $\\times\\, {factor}$, so\n\n" + numbers + lesson + "\n\n"
            + tree + order + "\n\n" + energy)


def playground_view(
    d: int = 2,
    n_neurons: int = 6,
    angles: Sequence[float] = (30.0,),
    update_kind: UpdateKind = "givens",
    strength: float = 0.0,
    upto_level: int | None = None,
    seed: int = 0,
    alpha_scale: float = 1.0,
    beta_scale: float = 1.0,
) -> dict[str, Any]:
    """Everything the playground tab shows for one setting of its controls.

    ``angles`` are in **degrees**, level by level (d=2: 1, d=3: 2, d=4: 3).
    Missing angles count as 0 and extra ones are ignored, so the app may always
    pass its three sliders.  ``strength`` is the LoRA scale s (kind "lora") or
    the shear of every block (kind "quasi"; 0 gives back strict Givens); it is
    unused for "givens".  ``alpha_scale`` / ``beta_scale`` (kind "quasi" only)
    scale the two columns of every block: block = R(theta) @
    ``quasi_block_factor(strength, alpha_scale, beta_scale)``.  ``upto_level``
    (None = all) applies the first k tree levels; it is ignored for "lora".

    Returns keys: update_kind, figure, W_before, W_after, operator (None for lora),
    energy_before, energy_after, energy_rel_change, max_angle_change_deg,
    n_levels, block (None for lora: inner = <alpha, beta> of every block,
    alpha_norm, beta_norm, penalty = sum of <alpha, beta>^2 over the d - 1
    blocks), operator_deviation (||M^T M - I||_F; None for lora),
    singular_values (of M; None for lora), uniform_scale (M is a rotation times
    one common scale), explanation (markdown with $...$ LaTeX).
    """
    if d not in (2, 3, 4):
        raise ValueError(f"the playground supports d = 2, 3 or 4, got {d}")
    if update_kind not in ("givens", "lora", "quasi"):
        raise ValueError(f"update_kind must be 'givens', 'lora' or 'quasi', got {update_kind!r}")
    a = np.zeros(d - 1)
    given = np.asarray(list(angles), dtype=np.float64)[: d - 1]
    a[: given.size] = given
    n_levels = len(tree_pairs(d))
    k = _check_upto(d, upto_level)
    if update_kind != "quasi":
        alpha_scale = beta_scale = 1.0
    alpha_scale, beta_scale = float(alpha_scale), float(beta_scale)
    if not (alpha_scale > 0 and beta_scale > 0 and math.isfinite(alpha_scale) and math.isfinite(beta_scale)):
        raise ValueError(f"column scales must be positive, got {alpha_scale}, {beta_scale}")

    W0 = default_neurons(n_neurons, d, seed)
    M: np.ndarray | None
    block: dict[str, float] | None = None
    deviation = singular = None
    uniform = False
    if update_kind == "lora":
        M, W1 = None, lora_like_update(W0, strength, seed)
    else:
        shear = float(strength) if update_kind == "quasi" else 0.0
        blocks = givens_blocks(np.radians(a))
        if update_kind == "quasi":
            blocks = blocks @ quasi_block_factor(shear, alpha_scale, beta_scale)
        M = quasi_operator(d, blocks, k)
        W1 = W0 @ M.T
        # the block's numbers from their formulas (exact; block_columns of `blocks` agrees to rounding)
        inner = alpha_scale * beta_scale * shear
        block = {"inner": inner, "alpha_norm": alpha_scale,
                 "beta_norm": beta_scale * math.sqrt(1.0 + shear**2), "penalty": (d - 1) * inner**2}
        deviation = float(np.linalg.norm(M.T @ M - np.eye(d)))
        singular = np.linalg.svd(M, compute_uv=False)
        uniform = bool(np.ptp(singular) <= 1e-12 * max(1.0, float(singular.max())))

    e0, e1 = _safe_energy(W0), _safe_energy(W1)
    rel = (e1 - e0) / e0 if np.isfinite(e1) else float("inf")
    try:
        dmax = float(np.max(np.abs(pairwise_angles(W1) - pairwise_angles(W0))))
    except ValueError:  # a neuron shrank to zero length
        dmax = float("nan")

    kind_title = {"givens": "Givens (GOFT)", "lora": "LoRA-like rank-1", "quasi": "quasi-Givens"}
    step = "" if update_kind == "lora" else f", levels applied {k}/{n_levels}"
    title = f"{kind_title[update_kind]}{step}: HE {e0:.3f} → {e1:.3f} ({rel:+.2%})"
    op = None if M is None else {"deviation": deviation, "singular_values": singular}
    return {
        "update_kind": update_kind,
        "figure": playground_figure(W0, W1, title),
        "W_before": W0,
        "W_after": W1,
        "operator": M,
        "energy_before": e0,
        "energy_after": e1,
        "energy_rel_change": rel,
        "max_angle_change_deg": dmax,
        "n_levels": n_levels,
        "block": block,
        "operator_deviation": deviation,
        "singular_values": singular,
        "uniform_scale": uniform,
        "explanation": _explain(update_kind, d, k, a, strength, e0, e1, rel, dmax,
                                stepping=upto_level is not None, alpha_scale=alpha_scale,
                                beta_scale=beta_scale, block=block, op=op),
    }
