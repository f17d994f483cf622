"""Properties of the tree layout and the fused-stage GivensTree operator.

Every expected value is built independently of the fast path: explicit d x d
Givens matrices multiplied level by level from `tree_pairs`, the Gram matrix
M^T M, and a hand-computed alignment of a vector onto e_0.
"""

import math

import numpy as np
import pytest
import scipy.sparse
import torch

from qgoft_core.ops.layout import num_levels, stage_plans, tree_pairs
from qgoft_core.ops.rotation import GivensTree, givens_table, quasi_table

pytestmark = pytest.mark.usefixtures("single_thread")


def random_angles(d: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return ((torch.rand(d - 1, generator=g, dtype=torch.float64) * 2 - 1) * math.pi).to(dtype)


def random_blocks(d: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.eye(2, dtype=torch.float64) + 0.5 * torch.randn(d - 1, 2, 2, generator=g,
                                                                 dtype=torch.float64)).to(dtype)


def naive_operator(d: int, table: torch.Tensor) -> torch.Tensor:
    """M = P_1 P_2 ... P_L from explicit d x d level matrices (row-vector convention).

    Pair p = (i, j) in flattened tree order reads table row p = (m_ii, m_ij, m_ji, m_jj).
    """
    m = torch.eye(d, dtype=table.dtype)
    p = 0
    for level in tree_pairs(d):
        P = torch.eye(d, dtype=table.dtype)
        for i, j in level:
            a, b, c, e = table[p]
            P[i, i], P[i, j], P[j, i], P[j, j] = a, b, c, e
            p += 1
        m = m @ P
    assert p == d - 1
    return m


# -- layout -------------------------------------------------------------------
@pytest.mark.parametrize("d", [2, 3, 5, 8, 12, 13, 127, 384, 768, 1000])
def test_tree_pairs_are_a_carry_rule_tree(d):
    levels = tree_pairs(d)
    assert len(levels) == num_levels(d) == math.ceil(math.log2(d))
    flat = [pair for level in levels for pair in level]
    assert len(flat) == d - 1
    for level in levels:  # pairs of one level are disjoint
        touched = [k for pair in level for k in pair]
        assert len(touched) == len(set(touched))
    # every index except 0 is the second member of exactly one pair: a spanning tree rooted at 0
    seconds = sorted(j for _, j in flat)
    assert seconds == list(range(1, d))
    # index i is touched at (2-adic valuation of i) + 1 levels (capped by the depth / its existence)
    for level_no, level in enumerate(levels, start=1):
        step, half = 2**level_no, 2 ** (level_no - 1)
        assert all(i % step == 0 and j == i + half for i, j in level)


def test_tree_pairs_d12_example_from_the_method_doc():
    assert tree_pairs(12) == (
        ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
        ((0, 2), (4, 6), (8, 10)),
        ((0, 4),),
        ((0, 8),),
    )


@pytest.mark.parametrize("d", [1, 0, -3])
def test_too_small_dimension_is_refused(d):
    with pytest.raises(ValueError, match="at least 2"):
        GivensTree(d)


# -- strict mode is orthogonal ------------------------------------------------
@pytest.mark.parametrize("d", [2, 3, 5, 12, 127, 384, 768, 1000, 4096])
def test_strict_operator_is_orthogonal_in_fp32(d):
    tree = GivensTree(d)
    m = tree.dense(givens_table(random_angles(d, seed=d)))
    assert m.dtype == torch.float32
    m64 = m.double()
    # Gram in float64 from the fp32 M; M has ~d log d non-zeros, so form it sparsely
    sp = scipy.sparse.csr_matrix(m64.numpy())
    residual = sp.T @ sp - scipy.sparse.identity(d, format="csr")
    dev = float(np.sqrt((residual.toarray() ** 2).sum())) if d <= 1000 else float(
        np.sqrt((residual.tocsr().data ** 2).sum()))
    assert dev < 1e-5, f"||M^T M - I||_F = {dev:.3g} at d={d}"
    if d <= 768:  # cross-check the sparse Gram against the dense one
        dense_dev = float(torch.linalg.norm(m64.T @ m64 - torch.eye(d, dtype=torch.float64)))
        assert dense_dev == pytest.approx(dev, rel=1e-6, abs=1e-12)
        # and it is a proper rotation, not a reflection
        assert torch.linalg.det(m64) == pytest.approx(1.0, abs=1e-6)


# -- fused stages == naive product of Givens matrices ---------------------------
@pytest.mark.parametrize("d", [2, 3, 5, 8, 12, 13, 17, 31, 64, 100])
@pytest.mark.parametrize("block_levels", [1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["goft", "qgoft"])
def test_fused_stages_equal_naive_level_product(d, block_levels, kind):
    if kind == "goft":
        table = givens_table(random_angles(d, seed=d, dtype=torch.float64))
    else:
        table = quasi_table(random_blocks(d, seed=d))
    assert table.shape == (d, 4)
    tree = GivensTree(d, block_levels=block_levels)
    expected = naive_operator(d, table)
    torch.testing.assert_close(tree.dense(table), expected, rtol=1e-12, atol=1e-12)

    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 5, d, generator=g, dtype=torch.float64)
    torch.testing.assert_close(tree.rotate(x, table), x @ expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(tree.rotate_transposed(x, table), x @ expected.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", [5, 12, 100])
def test_block_levels_do_not_change_the_operator(d):
    table = quasi_table(random_blocks(d, seed=1))
    ref = GivensTree(d, block_levels=1).dense(table)
    for k in (2, 3, 4, 5, 6, 10):
        torch.testing.assert_close(GivensTree(d, block_levels=k).dense(table), ref, rtol=1e-12, atol=1e-12)
    assert len(stage_plans(d, 1)) == num_levels(d)


@pytest.mark.parametrize("d", [2, 13, 768])
def test_rotate_transposed_in_fp32(d):
    table = givens_table(random_angles(d, seed=3))
    tree = GivensTree(d)
    m = tree.dense(table)
    x = torch.randn(4, d, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(tree.rotate_transposed(x, table), x @ m.T, rtol=1e-5, atol=1e-5)
    # the transpose of a rotation is its inverse
    torch.testing.assert_close(tree.rotate_transposed(tree.rotate(x, table), table), x, rtol=1e-5, atol=1e-5)


def test_rotate_checks_the_last_dimension():
    tree = GivensTree(6)
    table = givens_table(torch.zeros(5))
    with pytest.raises(ValueError, match="last dimension 6"):
        tree.rotate(torch.zeros(2, 7), table)
    with pytest.raises(ValueError, match="last dimension 6"):
        tree.rotate_transposed(torch.zeros(2, 7), table)


@pytest.mark.parametrize("d", [2, 12, 13])
def test_zero_angles_and_identity_blocks_give_the_identity_exactly(d):
    x = torch.randn(3, d)
    tree = GivensTree(d)
    assert torch.equal(tree.rotate(x, givens_table(torch.zeros(d - 1))), x)
    assert torch.equal(tree.rotate(x, quasi_table(torch.eye(2).expand(d - 1, 2, 2))), x)


# -- alignment onto e_0 (Theorem 4.1 in the tree form) ---------------------------
def alignment_angles(x: torch.Tensor) -> torch.Tensor:
    """Angles, in flattened tree order, that rotate x level by level onto ||x|| e_0.

    Row-vector convention: block [[c, -s], [s, c]] maps (x_i, x_j) to
    (x_i c + x_j s, -x_i s + x_j c); theta = atan2(x_j, x_i) zeroes x_j.
    """
    v = x.clone()
    angles = []
    for level in tree_pairs(x.shape[0]):
        for i, j in level:
            theta = math.atan2(float(v[j]), float(v[i]))
            c, s = math.cos(theta), math.sin(theta)
            v[i], v[j] = v[i] * c + v[j] * s, -v[i] * s + v[j] * c
            angles.append(theta)
    return torch.tensor(angles, dtype=x.dtype)


@pytest.mark.parametrize("d", [2, 3, 5, 7, 8, 12, 13, 100, 384, 1000])
@pytest.mark.parametrize("seed", [0, 1])
def test_tree_aligns_any_vector_onto_e0(d, seed):
    x = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    theta = alignment_angles(x)
    assert theta.shape == (d - 1,)
    y = GivensTree(d).rotate(x, givens_table(theta))
    target = torch.zeros(d, dtype=torch.float64)
    target[0] = x.norm()
    torch.testing.assert_close(y, target, rtol=0, atol=1e-10 * float(x.norm()))


# -- gradients -----------------------------------------------------------------
@pytest.mark.parametrize("d, block_levels", [(8, 3), (12, 3), (13, 3), (13, 1)])
def test_gradcheck_wrt_x_and_angles(d, block_levels):
    tree = GivensTree(d, block_levels=block_levels)
    g = torch.Generator().manual_seed(d)
    x = torch.randn(1, d, generator=g, dtype=torch.float64, requires_grad=True)
    theta = random_angles(d, seed=d, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, t: tree.rotate(x, givens_table(t)), (x, theta))
    assert torch.autograd.gradcheck(lambda x, t: tree.rotate_transposed(x, givens_table(t)), (x, theta))


@pytest.mark.parametrize("d, block_levels", [(8, 3), (12, 3), (13, 3), (13, 1)])
def test_gradcheck_wrt_x_and_quasi_blocks(d, block_levels):
    tree = GivensTree(d, block_levels=block_levels)
    g = torch.Generator().manual_seed(d)
    x = torch.randn(1, d, generator=g, dtype=torch.float64, requires_grad=True)
    blocks = random_blocks(d, seed=d).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, b: tree.rotate(x, quasi_table(b)), (x, blocks))
    assert torch.autograd.gradcheck(lambda x, b: tree.rotate_transposed(x, quasi_table(b)), (x, blocks))


@pytest.mark.parametrize("d", [12, 13])
def test_gradcheck_wrt_the_table_itself(d):
    tree = GivensTree(d)
    x = torch.randn(1, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    table = quasi_table(random_blocks(d, seed=2)).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: tree.rotate(x, t), (table,))


@pytest.mark.parametrize("kind", ["goft", "qgoft"])
@pytest.mark.parametrize("d, block_levels", [(5, 4), (5, 1), (8, 4), (8, 2), (12, 4), (12, 2), (12, 1)])
def test_double_backward_gradgradcheck(d, block_levels, kind):
    """create_graph=True through the hand-written backward: exact second derivatives
    (one and several stages; the second-order path recomputes through plain ops)."""
    tree = GivensTree(d, block_levels=block_levels)
    g = torch.Generator().manual_seed(d)
    x = torch.randn(3, d, generator=g, dtype=torch.float64, requires_grad=True)
    if kind == "goft":
        params, table = random_angles(d, seed=d, dtype=torch.float64), givens_table
    else:
        params, table = random_blocks(d, seed=d), quasi_table
    params.requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda x, p: tree.rotate(x, table(p)), (x, params))
    assert torch.autograd.gradgradcheck(lambda x, p: tree.rotate_transposed(x, table(p)), (x, params))
    # one side only: parameters (frozen input) and input (frozen parameters)
    assert torch.autograd.gradgradcheck(lambda p: tree.rotate(x.detach(), table(p)), (params,))
    assert torch.autograd.gradgradcheck(lambda x: tree.rotate(x, table(params.detach())), (x,))


def test_first_order_backward_does_not_take_the_double_backward_path(monkeypatch):
    """The fast backward serves plain .backward(); the recompute only create_graph=True."""
    import qgoft_core.ops.rotation as rotation

    calls = []
    original = rotation._differentiable_backward
    monkeypatch.setattr(rotation, "_differentiable_backward", lambda *a: calls.append(1) or original(*a))
    d = 12
    tree = GivensTree(d, block_levels=2)
    theta = random_angles(d, dtype=torch.float64).requires_grad_(True)
    x = torch.randn(4, d, dtype=torch.float64)
    tree.rotate(x, givens_table(theta)).pow(2).sum().backward()
    first = theta.grad.clone()
    assert calls == []
    theta.grad = None
    (grad,) = torch.autograd.grad(tree.rotate(x, givens_table(theta)).pow(2).sum(), theta, create_graph=True)
    assert calls == [1]
    torch.testing.assert_close(grad.detach(), first, rtol=1e-12, atol=1e-12)
    grad.pow(2).sum().backward()
    assert theta.grad is not None and torch.isfinite(theta.grad).all()


def test_givens_tree_does_not_shadow_module_apply():
    tree = GivensTree(12)
    seen = []
    assert tree.apply(seen.append) is tree  # nn.Module.apply(fn)
    assert seen == [tree]


def test_angle_map_has_rank_d_minus_1_not_full_so_d():
    """d - 1 angles: the Jacobian of theta -> M has rank d - 1, far below d(d-1)/2."""
    d = 8
    tree = GivensTree(d)
    theta = random_angles(d, seed=5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: tree.dense(givens_table(t)).reshape(-1), theta)
    assert torch.linalg.matrix_rank(jac).item() == d - 1 < d * (d - 1) // 2


@pytest.mark.parametrize("d", [12, 13])
def test_gradcheck_with_only_one_side_requiring_grad(d):
    tree = GivensTree(d)
    x = torch.randn(2, d, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    theta = random_angles(d, seed=4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: tree.rotate(x, givens_table(theta)), (x.clone().requires_grad_(True),))
    assert torch.autograd.gradcheck(lambda t: tree.rotate(x, givens_table(t)), (theta.clone().requires_grad_(True),))


@pytest.mark.parametrize("d", [5, 13, 100])
def test_rotate_accepts_strided_and_batched_inputs(d):
    table = quasi_table(random_blocks(d, seed=6))
    tree = GivensTree(d)
    m = naive_operator(d, table)
    x = torch.randn(d, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).T  # not contiguous
    torch.testing.assert_close(tree.rotate(x, table), x @ m, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(tree.rotate_transposed(x, table), x @ m.T, rtol=1e-12, atol=1e-12)
    y = tree.rotate(x.reshape(2, 3, d), table)
    assert y.shape == (2, 3, d)
    torch.testing.assert_close(y.reshape(6, d), x @ m, rtol=1e-12, atol=1e-12)
    assert tree.rotate(torch.zeros(0, d, dtype=torch.float64), table).shape == (0, d)


def test_rotate_computes_in_the_tables_dtype():
    d = 12
    tree = GivensTree(d)
    x = torch.randn(3, d).to(torch.bfloat16)
    table = givens_table(random_angles(d))
    y = tree.rotate(x, table)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, x.float() @ tree.dense(table), rtol=1e-5, atol=1e-5)


def test_rotation_stays_fp32_under_autocast():
    """Autocast (bf16 on CPU here, bf16 on CUDA in training) must not lower the
    precision of the rotation: its products are computed in the table's fp32."""
    import torch
    from qgoft_core import GivensTree, givens_table

    torch.manual_seed(0)
    tree = GivensTree(384)
    table = givens_table(torch.randn(383))
    x = torch.randn(64, 384)
    exact = tree.rotate(x, table)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = tree.rotate(x, table)
    assert under_autocast.dtype == torch.float32
    assert torch.allclose(under_autocast, exact, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("d, kind, scaled", [
    *[(d, kind, scaled) for d in (2, 5, 16, 17, 31, 127, 256, 257, 384, 1000)
      for kind in ("goft", "qgoft") for scaled in (False, True)],
    (4097, "goft", False), (4097, "qgoft", True)])
def test_gram_deviation_equals_the_dense_gram(d, kind, scaled):
    # The structured formula against ||A^T A - I||_F of the dense operator,
    # for one, two, three and four stages (d = 4097 needs four).
    table = givens_table(random_angles(d, dtype=torch.float64)) if kind == "goft" else \
        quasi_table(random_blocks(d))
    scale = (1 + 0.3 * torch.randn(d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)) \
        if scaled else None
    tree = GivensTree(d)
    a = tree.dense(table) if scale is None else scale.unsqueeze(1) * tree.dense(table)
    expected = float((a.T @ a - torch.eye(d, dtype=torch.float64)).norm())
    assert tree.gram_deviation(table, scale) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_gram_deviation_of_a_strict_fp32_rotation_is_rounding_only():
    tree = GivensTree(1536)
    assert tree.gram_deviation(givens_table(random_angles(1536))) < 1e-5
    assert tree.gram_deviation(givens_table(random_angles(1536, dtype=torch.float64))) < 1e-12
