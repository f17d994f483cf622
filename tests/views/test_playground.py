"""Tests for the numpy Givens playground and the Learn-page text."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from demos.learn_texts import CHART_NOTES, LEARN_MARKDOWN, TOUR_STEPS
from qgoft_core.viz.playground import (
    block_columns,
    default_neurons,
    givens_blocks,
    input_scales_at_zero_angles,
    quasi_block_factor,
    givens_operator,
    hyperspherical_energy,
    lora_like_update,
    pairwise_angles,
    playground_figure,
    playground_view,
    quasi_operator,
    sheared_block_update,
    tree_pairs,
)


# --- tree layout -------------------------------------------------------------
@pytest.mark.parametrize("d", range(2, 41))
def test_tree_pairs_counts_and_levels(d: int) -> None:
    levels = tree_pairs(d)
    flat = [p for lv in levels for p in lv]
    assert len(flat) == d - 1
    assert len(levels) == math.ceil(math.log2(d))
    for r, lv in enumerate(levels, start=1):
        expected = [(2**r * k, 2**r * k + 2 ** (r - 1)) for k in range(d)
                    if 2**r * k + 2 ** (r - 1) < d]
        assert lv == expected
        touched = [i for p in lv for i in p]
        assert len(touched) == len(set(touched))  # pairs of a level are disjoint


def test_tree_pairs_d12_example() -> None:
    assert tree_pairs(12) == [
        [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)],
        [(0, 2), (4, 6), (8, 10)],
        [(0, 4)],  # 8 is carried
        [(0, 8)],
    ]
    assert tree_pairs(3) == [[(0, 1)], [(0, 2)]]


def _carry_rule_pairs(d: int) -> list[list[tuple[int, int]]]:
    """The carry rule as the method doc states it: pair neighbouring active
    indices, carry an odd one out, keep the first of each pair."""
    active, levels = list(range(d)), []
    while len(active) > 1:
        levels.append([(active[k], active[k + 1]) for k in range(0, len(active) - 1, 2)])
        active = active[::2]
    return levels


@pytest.mark.parametrize("d", range(2, 41))
def test_tree_pairs_is_the_librarys_layout_as_lists(d: int) -> None:
    from qgoft_core.ops.layout import tree_pairs as library_tree_pairs

    assert tree_pairs(d) == [list(level) for level in library_tree_pairs(d)]
    assert tree_pairs(d) == _carry_rule_pairs(d)


def test_energy_is_the_librarys_with_the_guard_on() -> None:
    import torch

    from qgoft_core import metrics

    W = default_neurons(7, 4, seed=3)
    ours = hyperspherical_energy(W)
    assert ours == metrics.hyperspherical_energy(torch.from_numpy(W), max_neurons=None,
                                                 min_distance=1e-6)
    assert ours == pytest.approx(metrics.hyperspherical_energy(torch.from_numpy(W), None), rel=1e-12)
    # without the guard the library floors the distance; with it, near-duplicates are refused
    twin = np.vstack([W, W[2] * (1 + 1e-3)])
    assert math.isfinite(metrics.hyperspherical_energy(torch.from_numpy(twin), None))
    with pytest.raises(ValueError, match="neurons 2 and 7 are near-duplicates"):
        hyperspherical_energy(twin)


@pytest.mark.parametrize("d", [0, 1, -3])
def test_tree_pairs_rejects_small_d(d: int) -> None:
    with pytest.raises(ValueError):
        tree_pairs(d)


# --- operators ---------------------------------------------------------------
@pytest.mark.parametrize("d", [2, 3, 4, 7, 12, 33])
def test_givens_operator_is_orthogonal(d: int) -> None:
    rng = np.random.default_rng(d)
    M = givens_operator(d, rng.uniform(-np.pi, np.pi, d - 1))
    assert np.allclose(M.T @ M, np.eye(d), atol=1e-12)
    assert np.isclose(np.linalg.det(M), 1.0)


def test_givens_operator_single_block_entries() -> None:
    t = 0.3
    M = givens_operator(2, [t])
    assert np.allclose(M, [[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


@pytest.mark.parametrize("d", [2, 3, 4, 12])
def test_upto_level(d: int) -> None:
    rng = np.random.default_rng(0)
    angles = rng.uniform(-np.pi, np.pi, d - 1)
    assert np.array_equal(givens_operator(d, angles, upto_level=0), np.eye(d))
    L = len(tree_pairs(d))
    assert np.allclose(givens_operator(d, angles, upto_level=L), givens_operator(d, angles))
    with pytest.raises(ValueError):
        givens_operator(d, angles, upto_level=L + 1)


def test_quasi_operator_matches_givens_for_rotation_blocks() -> None:
    d = 12
    angles = np.random.default_rng(1).uniform(-np.pi, np.pi, d - 1)
    c, s = np.cos(angles), np.sin(angles)
    blocks = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    assert np.allclose(quasi_operator(d, blocks), givens_operator(d, angles))
    assert np.array_equal(quasi_operator(d, np.tile(np.eye(2), (d - 1, 1, 1))), np.eye(d))


def test_tree_aligns_a_vector_with_e0() -> None:
    """Property behind Theorem 4.1: level 1 first (x @ M), angles can send x to |x| e_0."""
    d = 12
    x = np.random.default_rng(3).standard_normal(d)
    y, angles = x.copy(), []
    for level in tree_pairs(d):
        for i, j in level:
            t = math.atan2(y[j], y[i])  # rotate (y_i, y_j) onto (r, 0)
            angles.append(t)
            r = math.hypot(y[i], y[j])
            y[i], y[j] = r, 0.0
    out = x @ givens_operator(d, angles)
    assert np.allclose(out, np.linalg.norm(x) * np.eye(d)[0], atol=1e-12)


# --- energy and angles -------------------------------------------------------
@pytest.mark.parametrize("d", [2, 3, 4])
@pytest.mark.parametrize("n", [3, 6, 10])
def test_givens_keeps_energy_and_angles(d: int, n: int) -> None:
    W = default_neurons(n, d, seed=n)
    rng = np.random.default_rng(10 * d + n)
    for _ in range(5):
        M = givens_operator(d, rng.uniform(-np.pi, np.pi, d - 1))
        W2 = W @ M.T
        e0, e1 = hyperspherical_energy(W), hyperspherical_energy(W2)
        assert abs(e1 - e0) / e0 < 1e-9
        assert np.max(np.abs(pairwise_angles(W2) - pairwise_angles(W))) < 1e-6
        assert np.allclose(np.linalg.norm(W2, axis=1), np.linalg.norm(W, axis=1))


def test_energy_formula_on_a_square() -> None:
    W = np.array([[1.0, 0], [0, 1], [-1, 0], [0, -1]])  # 4 points, 90 degrees apart
    side, diag = math.sqrt(2), 2.0
    # each point: 2 neighbours at sqrt(2), 1 opposite at 2; i != j counts both orders
    assert math.isclose(hyperspherical_energy(W), 4 * (2 / side + 1 / diag))
    assert math.isclose(hyperspherical_energy(3 * W), hyperspherical_energy(W))
    A = pairwise_angles(W)
    assert A.shape == (4, 4) and np.allclose(A[0], [0, 90, 180, 90])


def test_energy_rejects_duplicates_and_zero_rows() -> None:
    with pytest.raises(ValueError, match="near-duplicate"):
        hyperspherical_energy(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="zero-length"):
        hyperspherical_energy(np.array([[1.0, 0.0], [0.0, 0.0]]))


@pytest.mark.parametrize("d", [2, 3, 4])
def test_lora_and_shear_change_energy(d: int) -> None:
    W = default_neurons(6, d, seed=0)
    e0 = hyperspherical_energy(W)
    for W2 in (lora_like_update(W, 0.5, seed=0), sheared_block_update(W, 0.5)):
        assert abs(hyperspherical_energy(W2) - e0) / e0 > 1e-3
        assert np.max(np.abs(pairwise_angles(W2) - pairwise_angles(W))) > 0.1
    # fixed seed: the same update every time; strength 0 / shear 0 change nothing
    assert np.array_equal(lora_like_update(W, 0.5, 7), lora_like_update(W, 0.5, 7))
    assert np.array_equal(lora_like_update(W, 0.0, 7), W)
    assert np.allclose(sheared_block_update(W, 0.0), W)


@pytest.mark.parametrize("d", [2, 3, 4])
def test_default_neurons_unit_and_spread(d: int) -> None:
    W = default_neurons(10, d, seed=0)
    assert W.shape == (10, d)
    assert np.allclose(np.linalg.norm(W, axis=1), 1.0)
    A = pairwise_angles(W) + 360 * np.eye(10)
    assert A.min() > 5.0


# --- view and figure ---------------------------------------------------------
def _axis_titles(fig: go.Figure) -> list[str | None]:
    if fig.layout.scene.xaxis.title.text:  # 3-D
        sc = fig.layout.scene
        return [sc.xaxis.title.text, sc.yaxis.title.text, sc.zaxis.title.text]
    return [fig.layout.xaxis.title.text, fig.layout.yaxis.title.text]


@pytest.mark.parametrize("d", [2, 3, 4])
@pytest.mark.parametrize("kind", ["givens", "lora", "quasi"])
def test_playground_view(d: int, kind: str) -> None:
    v = playground_view(d, 6, [35.0, -50.0, 20.0], kind, 0.4, None, 0)
    fig = v["figure"]
    names = {t.name for t in fig.data}
    assert {"base neurons", "transformed neurons"} <= names
    assert fig.layout.height and fig.layout.height > 0
    assert all(_axis_titles(fig))
    assert any(t.showlegend is not False for t in fig.data)
    assert "energy" in v["explanation"].lower()
    assert v["W_before"].shape == v["W_after"].shape == (6, d)
    if kind == "givens":
        assert abs(v["energy_rel_change"]) < 1e-9
        assert v["max_angle_change_deg"] < 1e-6
    else:
        assert abs(v["energy_rel_change"]) > 1e-3
        assert v["max_angle_change_deg"] > 0.1


def test_playground_view_levels_and_quasi_zero_shear() -> None:
    v0 = playground_view(4, 6, [30, 40, 50], "givens", 0.0, 0, 0)
    assert np.allclose(v0["W_after"], v0["W_before"]) and v0["n_levels"] == 2
    v1 = playground_view(4, 6, [30, 40, 50], "givens", 0.0, 1, 0)
    assert np.allclose(v1["operator"], givens_operator(4, np.radians([30, 40, 50]), 1))
    q = playground_view(3, 6, [30, 40], "quasi", 0.0, None, 0)
    g = playground_view(3, 6, [30, 40], "givens", 0.0, None, 0)
    assert np.allclose(q["W_after"], g["W_after"])
    # the app may pass more sliders than d-1: extras are ignored
    assert np.allclose(playground_view(2, 5, [30, 99, 99])["W_after"],
                       playground_view(2, 5, [30])["W_after"])
    with pytest.raises(ValueError):
        playground_view(5, 6, [0, 0, 0, 0])


def test_playground_figure_shapes() -> None:
    W = default_neurons(4, 2)
    with pytest.raises(ValueError):
        playground_figure(W, W[:3])
    fig = playground_figure(W, W, "t")
    assert fig.layout.title.text == "t"


# --- learn text ----------------------------------------------------------------
def test_learn_text() -> None:
    assert "Theorem 4.1" in LEARN_MARKDOWN
    assert "$d - 1$" in LEARN_MARKDOWN and "4(d - 1)" in LEARN_MARKDOWN
    assert "82,872" in LEARN_MARKDOWN and "331,488" in LEARN_MARKDOWN
    assert "hyperspherical" in LEARN_MARKDOWN.lower()
    assert LEARN_MARKDOWN.count("$") % 2 == 0  # balanced math delimiters


def test_tour_and_chart_notes() -> None:
    from ui.learn_tab import TOUR_PANELS

    assert 5 <= len(TOUR_STEPS) <= 8
    for step in TOUR_STEPS:
        assert {"title", "text", "target"} <= set(step) <= {"title", "text", "target", "controls", "all_hidden",
                                                             "if_hidden", "needs_run"}
        assert step["target"] in TOUR_PANELS
    assert set(CHART_NOTES) == {"loss-plot", "angle-heatmap", "angle-hist", "norm-plot",
                                "orth-plot", "energy-plot", "cka-plot", "playground-plot"}
    for note in CHART_NOTES.values():
        assert set(note) == {"see", "notice", "try"} and all(note.values())


# --- qGOFT's column lengths: the penalty is 0, the energy still moves --------------
def test_quasi_block_factor_columns() -> None:
    blocks = givens_blocks(np.radians([30.0, -45.0, 60.0])) @ quasi_block_factor(0.4, 1.3, 0.7)
    cols = block_columns(blocks)
    assert np.allclose(cols["inner"], 1.3 * 0.7 * 0.4, atol=1e-12)
    assert np.allclose(cols["alpha_norm"], 1.3) and np.allclose(cols["beta_norm"], 0.7 * math.sqrt(1.16))
    assert np.array_equal(quasi_block_factor(), np.eye(2))


@pytest.mark.parametrize("d", [2, 3, 4])
def test_view_block_numbers_are_the_blocks(d: int) -> None:
    v = playground_view(d, 6, [35.0, -50.0, 20.0], "quasi", 0.3, None, 0, 1.4, 0.8)
    blocks = givens_blocks(np.radians([35.0, -50.0, 20.0][: d - 1])) @ quasi_block_factor(0.3, 1.4, 0.8)
    cols = block_columns(blocks)
    assert v["block"]["inner"] == pytest.approx(cols["inner"][0], abs=1e-12)
    assert v["block"]["alpha_norm"] == pytest.approx(cols["alpha_norm"][0])
    assert v["block"]["beta_norm"] == pytest.approx(cols["beta_norm"][0])
    assert v["block"]["penalty"] == pytest.approx(float(np.sum(cols["inner"] ** 2)))
    assert np.allclose(v["operator"], quasi_operator(d, blocks))
    M = v["operator"]
    assert v["operator_deviation"] == pytest.approx(np.linalg.norm(M.T @ M - np.eye(d)))
    assert np.allclose(v["singular_values"], np.linalg.svd(M, compute_uv=False))


@pytest.mark.parametrize("d,a,b", [(3, 1.5, 1.5), (4, 1.5, 1.5), (3, 1.5, 1.0), (2, 1.0, 1.5),
                                   (2, 0.6, 1.0), (4, 1.0, 0.7)])
def test_column_lengths_move_the_energy_with_the_penalty_at_zero(d: int, a: float, b: float) -> None:
    v = playground_view(d, 6, [30.0, -45.0, 60.0], "quasi", 0.0, None, 0, a, b)
    assert v["block"]["inner"] == 0 and v["block"]["penalty"] == 0
    assert v["block"]["alpha_norm"] == a and v["block"]["beta_norm"] == b
    assert abs(v["energy_rel_change"]) > 1e-3 and v["max_angle_change_deg"] > 0.1
    assert not v["uniform_scale"] and v["operator_deviation"] > 0.1
    text = v["explanation"]
    assert "exactly 0" in text and "yet the energy moves" in text
    assert f"{v['energy_before']:.4f} before, {v['energy_after']:.4f} after" in text
    assert f"\\lVert\\alpha\\rVert = {a:.4g}" in text and f"\\lVert\\beta\\rVert = {b:.4g}" in text
    assert "\\langle\\alpha,\\beta\\rangle = 0" in text


@pytest.mark.parametrize("d", [2, 3, 4])
def test_zero_angles_scale_each_input_by_its_levels(d: int) -> None:
    a, b = 1.5, 1.2
    v = playground_view(d, 5, [0.0, 0.0, 0.0], "quasi", 0.0, None, 1, a, b)
    scales = input_scales_at_zero_angles(d, a, b)
    assert np.allclose(v["operator"], np.diag(scales))
    touched = [sum(i in pair for level in tree_pairs(d) for pair in level) for i in range(d)]
    assert touched[0] == len(tree_pairs(d))  # index 0 meets every level
    for i in range(d):
        firsts = sum(pair[0] == i for level in tree_pairs(d) for pair in level)
        assert scales[i] == pytest.approx(a**firsts * b**(touched[i] - firsts))
    assert "\\mathrm{diag}" in v["explanation"]


def test_one_common_scale_keeps_the_energy_but_not_orthogonality() -> None:
    v = playground_view(2, 6, [30.0], "quasi", 0.0, None, 0, 1.5, 1.5)  # d = 2: one block, c R
    assert abs(v["energy_rel_change"]) < 1e-12 and v["uniform_scale"]
    assert v["operator_deviation"] > 1.0
    assert "common scale" in v["explanation"]


def test_quasi_shear_is_what_the_penalty_sees() -> None:
    v = playground_view(3, 6, [30.0, -45.0], "quasi", 0.5, None, 0)
    assert v["block"]["inner"] == 0.5 and v["block"]["penalty"] == pytest.approx(2 * 0.25)
    assert "pushes back" in v["explanation"]
    g = playground_view(3, 6, [30.0, -45.0], "givens", 0.5, None, 0, 1.7, 0.6)  # scales ignored
    assert g["block"]["alpha_norm"] == 1.0 and g["operator_deviation"] < 1e-12
