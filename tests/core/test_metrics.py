"""Metrics: brute-force references and invariances, not numbers printed by the same code."""

import math

import pytest
import torch
from torch import nn

from qgoft_core import QGOFTConfig, get_qgoft_model
from qgoft_core.metrics import (BaseEnergyCache, adapter_metrics, block_polar, hyperspherical_energy,
                                layer_metrics, linear_cka, neuron_sample, norm_ratios,
                                orthogonality_deviation, summarize)
from qgoft_core.tuners.qgoft.layer import QGOFTLayer

pytestmark = pytest.mark.usefixtures("single_thread")


def brute_force_energy(w: torch.Tensor) -> float:
    rows = [r / r.norm() for r in w.double()]
    total = 0.0
    for i, a in enumerate(rows):
        for j, b in enumerate(rows):
            if i != j:
                total += 1.0 / float((a - b).norm())
    return total


def random_layer(d, n, method, scaling=None, angle_param="plain", seed=0, conv1d=False):
    torch.manual_seed(seed)
    if conv1d:
        from transformers.pytorch_utils import Conv1D
        base = Conv1D(n, d)
        nn.init.normal_(base.weight, std=0.2)
    else:
        base = nn.Linear(d, n)
    layer = QGOFTLayer(base, method, scaling, angle_param)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        if method == "goft":
            layer.qgoft_theta.copy_(torch.randn(d - 1, generator=g))
        else:
            layer.qgoft_blocks.add_(0.3 * torch.randn(d - 1, 2, 2, generator=g))
        if scaling == "output":
            layer.qgoft_scale_out.copy_(1 + 0.3 * torch.randn(n, generator=g))
        if scaling == "input":
            layer.qgoft_scale_in.copy_(1 + 0.3 * torch.randn(d, generator=g))
    return layer


# -- hyperspherical energy -----------------------------------------------------------
@pytest.mark.parametrize("n, d", [(2, 3), (7, 5), (12, 4), (20, 30)])
def test_energy_matches_brute_force_double_loop(n, d):
    w = torch.randn(n, d, generator=torch.Generator().manual_seed(n))
    assert hyperspherical_energy(w, max_neurons=None) == pytest.approx(brute_force_energy(w), rel=1e-10)


def test_energy_ignores_neuron_norms_and_order():
    w = torch.randn(9, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scaled = w * torch.rand(9, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64).add(0.1)
    perm = w[torch.randperm(9, generator=torch.Generator().manual_seed(2))]
    ref = hyperspherical_energy(w, None)
    assert hyperspherical_energy(scaled, None) == pytest.approx(ref, rel=1e-12)
    assert hyperspherical_energy(perm, None) == pytest.approx(ref, rel=1e-12)


def test_energy_of_duplicate_neurons_is_finite():
    w = torch.randn(4, 5)
    w[1] = w[0]
    assert math.isfinite(hyperspherical_energy(w, None))


def test_energy_sampling_is_deterministic_and_evenly_spaced():
    w = torch.randn(700, 8, generator=torch.Generator().manual_seed(3))
    a, b = hyperspherical_energy(w, 256), hyperspherical_energy(w.clone(), 256)
    assert a == b
    idx = neuron_sample(700, 256)
    assert idx.tolist() == sorted(set(idx.tolist())) and len(idx) == 256
    assert idx[0] == 0 and idx[-1] == 699
    small = neuron_sample(700, 40)
    assert hyperspherical_energy(w, 40) == pytest.approx(brute_force_energy(w[small]), rel=1e-10)
    assert a == pytest.approx(hyperspherical_energy(w[idx], None), rel=1e-12)
    assert neuron_sample(100, 256).tolist() == list(range(100))
    assert neuron_sample(100, None).tolist() == list(range(100))


@pytest.mark.parametrize("conv1d", [False, True])
@pytest.mark.parametrize("scaling", [None, "output"])
def test_strict_goft_keeps_energy_of_merged_weight(scaling, conv1d):
    d, n = 48, 40
    layer = random_layer(d, n, "goft", scaling, seed=4, conv1d=conv1d)
    base_w = layer.base_weight().detach().clone()
    he0 = hyperspherical_energy(base_w, None)
    # in float64 the drift is round-off
    assert hyperspherical_energy(layer.merged_weight(torch.float64), None) == pytest.approx(he0, rel=1e-10)
    # merged in place in fp32, as a user would
    layer.merge()
    assert hyperspherical_energy(layer.base_weight(), None) == pytest.approx(he0, rel=1e-6)
    # yet the weight itself did move
    assert not torch.allclose(layer.base_weight(), base_w, atol=1e-3)


@pytest.mark.parametrize("method, scaling", [("qgoft", None), ("goft", "input"), ("qgoft", "output")])
def test_non_orthogonal_variants_change_energy(method, scaling):
    layer = random_layer(48, 40, method, scaling, seed=5)
    he0 = hyperspherical_energy(layer.original_weight(), None)
    he1 = hyperspherical_energy(layer.merged_weight(torch.float64), None)
    assert abs(he1 - he0) / he0 > 1e-4


# -- orthogonality deviation ---------------------------------------------------------
@pytest.mark.parametrize("d", [2, 13, 100])
@pytest.mark.parametrize("angle_param", ["plain", "tanh"])
def test_orthogonality_deviation_goft_zero_qgoft_positive(d, angle_param):
    # the float64 operator of a strict layer is orthogonal to float64 round-off
    # (cos/sin taken in float64, not in fp32 and cast up: that gives ~1e-7)
    goft = random_layer(d, 7, "goft", angle_param=angle_param, seed=d).operator(torch.float64).detach()
    dev, per = orthogonality_deviation(goft)
    assert dev < 1e-12 and per == pytest.approx(dev / math.sqrt(d))
    q = random_layer(d, 7, "qgoft", seed=d).operator(torch.float64).detach()
    dev, per = orthogonality_deviation(q)
    dense = float(torch.linalg.norm(q.T @ q - torch.eye(d, dtype=torch.float64)))
    assert dev > 1e-2
    assert dev == pytest.approx(dense, rel=1e-10)
    assert per == pytest.approx(dense / math.sqrt(d), rel=1e-10)


def test_orthogonality_deviation_of_a_scaled_identity():
    # ||(2I)^T (2I) - I||_F = 3 sqrt(d)
    dev, per = orthogonality_deviation(2 * torch.eye(9))
    assert dev == pytest.approx(9.0) and per == pytest.approx(3.0)


# -- block polar decomposition ---------------------------------------------------------
def rotation_block(theta):
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def test_block_polar_of_rotations():
    thetas = [-3.0, -1.2, 0.0, 0.3, 1.5, 3.1]
    out = block_polar(torch.stack([rotation_block(t) for t in thetas]))
    torch.testing.assert_close(out["angle"], torch.tensor(thetas, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(out["scales"], torch.ones(len(thetas), 2, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(out["shear"], torch.zeros(len(thetas), dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(out["det"], torch.ones(len(thetas), dtype=torch.float64), atol=1e-12, rtol=0)


def test_block_polar_of_scaled_rotation_and_shear_and_reflection():
    theta = 0.7
    scaled = rotation_block(theta) @ torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64))
    # B = U P with P = diag(2, 0.5): rotation angle theta, scales {2, 0.5}, no shear
    sheared = torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=torch.float64)  # alpha=(1,0), beta=(0.5,1)
    reflection = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    out = block_polar(torch.stack([scaled, sheared, reflection]))
    assert float(out["angle"][0]) == pytest.approx(theta, abs=1e-12)
    assert sorted(out["scales"][0].tolist()) == pytest.approx([0.5, 2.0])
    assert float(out["shear"][0]) == pytest.approx(0.0, abs=1e-12)
    assert float(out["shear"][1]) == pytest.approx(0.5 / math.sqrt(1.25))
    assert float(out["dot"][1]) == pytest.approx(0.5)
    assert float(out["det"][2]) < 0
    assert float(out["det"][0]) > 0 and float(out["det"][1]) > 0
    assert float(out["alpha_norm"][1]) == pytest.approx(1.0) and float(out["beta_norm"][1]) == pytest.approx(math.sqrt(1.25))


# -- linear CKA ----------------------------------------------------------------------------
def test_linear_cka_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 12, generator=g)
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-10)  # orthogonal transform
    assert linear_cka(x, 3.7 * x) == pytest.approx(1.0, abs=1e-12)  # isotropic scaling
    assert linear_cka(x, x + 5.0) == pytest.approx(1.0, abs=1e-10)  # translation (centred)
    unrelated = torch.randn(60, 12, generator=g)
    value = linear_cka(x, unrelated)
    assert 0.0 <= value < 0.6
    assert value == pytest.approx(linear_cka(unrelated, x), rel=1e-12)
    # a non-isotropic scaling is not an invariance
    assert linear_cka(x, x * torch.linspace(0.01, 10, 12)) < 0.99
    # works on (examples, tokens, features) and different widths
    assert 0 <= linear_cka(torch.randn(10, 3, 4, generator=g), torch.randn(10, 7, generator=g)) <= 1


# -- per layer and per model ------------------------------------------------------------------
@pytest.mark.parametrize("method, scaling", [("goft", None), ("goft", "output"), ("goft", "input"),
                                             ("qgoft", None), ("qgoft", "output")])
def test_layer_metrics_shapes_and_values(method, scaling):
    d, n = 21, 17
    layer = random_layer(d, n, method, scaling, seed=6)
    m = layer_metrics("x", layer)
    assert (m.d, m.n, m.method) == (d, n, method)
    assert len(m.angles) == d - 1
    assert len(m.norm_ratio) == n
    values = [*m.angles, *m.norm_ratio, m.orth_dev, m.orth_dev_fro, m.he_base, m.he_tuned, m.he_drift]
    assert all(math.isfinite(v) for v in values)
    expected_ratio = norm_ratios(layer.original_weight(), layer.merged_weight(torch.float64))
    assert m.norm_ratio == pytest.approx(expected_ratio.tolist(), rel=1e-5)
    if method == "goft":
        assert m.angles == pytest.approx(layer.angles().double().tolist())
        assert m.block == {}
        if scaling == "input":  # diag(s) M is not orthogonal
            assert m.orth_dev > 1e-3
        else:  # orthogonal up to the precision the metrics are computed in (fp32 products)
            assert m.orth_dev < 1e-6
    else:
        assert m.orth_dev > 0 and m.block["penalty"] > 0 and m.block["reflections"] >= 0
        assert all(math.isfinite(v) for v in m.block.values())
    if scaling is None and method == "goft":
        assert abs(m.he_drift) < 1e-6
        assert m.norm_ratio == pytest.approx([1.0] * n, abs=1e-6)
    if scaling is None:
        assert m.scales is None
    else:
        assert len(m.scales) == (n if scaling == "output" else d)
    # merged or not, the metrics are the same
    layer.merge()
    merged = layer_metrics("x", layer)
    assert merged.he_base == pytest.approx(m.he_base, rel=1e-12)
    assert merged.angles == pytest.approx(m.angles)


@pytest.mark.parametrize("method", ["goft", "qgoft"])
def test_adapter_metrics_on_a_tiny_model(tiny, method):
    q = get_qgoft_model(tiny.build("bert"), QGOFTConfig(method=method))
    init = adapter_metrics(q)
    for m in init.values():  # identity at init: nothing has moved
        assert m.he_drift == 0.0 and m.orth_dev == 0.0
        assert all(a == 0 for a in m.angles)
    tiny.randomize(q, seed=8)
    cache = BaseEnergyCache()
    metrics = adapter_metrics(q, cache)
    assert list(metrics) == list(q.adapter_layers())
    for name, m in metrics.items():
        layer = q.adapter_layers()[name]
        assert len(m.angles) == layer.in_features - 1
        assert len(m.norm_ratio) == layer.out_features
        assert math.isfinite(m.he_drift) and math.isfinite(m.orth_dev)
        assert m.he_base == pytest.approx(init[name].he_base, rel=1e-12)
    summary = summarize(metrics)
    assert summary["layers"] == len(metrics)
    assert all(math.isfinite(v) for v in summary.values())
    if method == "goft":
        assert summary["max_abs_he_drift"] < 1e-6
        assert summary["norm_ratio_min"] == pytest.approx(1.0, abs=1e-6)
        assert summary["norm_ratio_max"] == pytest.approx(1.0, abs=1e-6)
    else:
        assert summary["max_abs_he_drift"] > 0 and summary["max_orth_dev"] > 0
    assert summarize({}) == {}


def test_block_polar_closed_form_matches_the_svd_polar_factor():
    b = torch.randn(4000, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = block_polar(b)
    u, s, vh = torch.linalg.svd(b)
    rot = u @ vh
    reference = torch.atan2(rot[..., 1, 0], rot[..., 0, 0])
    gap = (out["angle"] - reference).abs()
    assert float(torch.minimum(gap, 2 * math.pi - gap).max()) < 1e-12
    torch.testing.assert_close(out["scales"], s, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(out["det"], torch.linalg.det(b), atol=1e-12, rtol=0)
