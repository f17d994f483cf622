"""The claims the texts make about qGOFT's penalty, scaling and angles, computed with the library.

The Learn tab, the playground, the chart notes, the lessons and the config docstring say:
qGOFT's penalty λ Σ⟨α, β⟩² only asks each block's two columns to be perpendicular; the
column lengths are free and compound through the tree into an uneven scale of the inputs,
so with the penalty exactly 0 the hyperspherical energy still moves. Plain angles are
ordinary at ±180° (only the tanh form saturates), and the orthogonality deviation of
GOFT* (input scaling) includes the scale. Each test below computes its claim.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from qgoft_core import metrics
from qgoft_core.ops.layout import tree_pairs
from qgoft_core.ops.rotation import GivensTree, givens_table, quasi_table
from qgoft_core.tuners.qgoft.layer import QGOFTLayer


def _levels_touching(d: int) -> list[int]:
    return [sum(i in pair for level in tree_pairs(d) for pair in level) for i in range(d)]


def _qgoft_layer(d: int, n: int, seed: int, blocks: torch.Tensor, **kwargs) -> QGOFTLayer:
    torch.manual_seed(seed)
    layer = QGOFTLayer(nn.Linear(d, n, bias=False), "qgoft", **kwargs)
    with torch.no_grad():
        layer.qgoft_blocks.copy_(blocks)
    return layer


def _drift(base: torch.Tensor, tuned: torch.Tensor) -> float:
    return metrics.relative_drift(metrics.hyperspherical_energy(tuned.double(), None),
                                  metrics.hyperspherical_energy(base.double(), None))


# -- the penalty sees only ⟨α, β⟩ -----------------------------------------------------------------
@pytest.mark.parametrize("c", [0.8, 1.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_blocks_c_identity_zero_penalty_yet_the_energy_moves(c: float, seed: int) -> None:
    d, n = 8, 48
    blocks = c * torch.eye(2).expand(d - 1, 2, 2).clone()
    layer = _qgoft_layer(d, n, seed, blocks)
    assert float(layer.orthogonality_penalty().detach()) == 0.0  # exactly 0, not small
    base, tuned = layer.original_weight().detach(), layer.merged_weight(torch.float64).detach()
    # the library's rotation table gives the same tuned neurons: W M^T
    table = quasi_table(blocks.double())
    assert torch.allclose(GivensTree(d).rotate_transposed(base.double(), table), tuned, atol=1e-12)
    # M is diagonal: input i is scaled by c to the number of levels that touch it
    M = layer.operator(torch.float64).detach()
    expected = torch.tensor([c ** m for m in _levels_touching(d)], dtype=torch.float64)
    assert torch.allclose(M, torch.diag(expected), atol=1e-6)
    assert _levels_touching(d)[0] == math.ceil(math.log2(d))  # index 0 meets every level
    assert len(set(_levels_touching(d))) > 1  # ... others fewer: the scale is uneven
    # and the energy of random neurons moves, well above rounding
    assert abs(_drift(base, tuned)) > 1e-3
    assert layer.orthogonality_deviation(torch.float64) > 0.1


def test_one_common_scale_would_keep_the_energy() -> None:
    """It is the unevenness that moves the energy: c * W (all inputs scaled alike) keeps it."""
    torch.manual_seed(0)
    base = torch.randn(48, 8, dtype=torch.float64)
    assert abs(_drift(base, 1.5 * base)) < 1e-12


def test_strict_rotation_keeps_the_energy_the_same_neurons() -> None:
    d = 8
    torch.manual_seed(0)
    base = torch.randn(48, d, dtype=torch.float64)
    tuned = GivensTree(d).rotate_transposed(base, givens_table(torch.rand(d - 1, dtype=torch.float64) * 6 - 3))
    assert abs(_drift(base, tuned)) < 1e-12


def test_a_shear_is_what_the_penalty_sees() -> None:
    d, s = 8, 0.3
    blocks = torch.tensor([[1.0, s], [0.0, 1.0]]).expand(d - 1, 2, 2).clone()
    layer = _qgoft_layer(d, 16, 0, blocks)
    assert float(layer.orthogonality_penalty().detach()) == pytest.approx((d - 1) * s**2)


# -- the λ lesson: a larger λ does not bring the operator or the energy back ----------------------
def test_lambda_lesson_ends_with_a_higher_deviation_and_drift() -> None:
    from demos.presets import PRESETS, load_run

    small, large = load_run("qgoft"), load_run("qgoft_lambda_huge")
    assert small.config["reg_lambda"] < large.config["reg_lambda"]
    (_, sums_small), (_, sums_large) = small.penalty_sums(), large.penalty_sums()
    assert sums_large[-1] < sums_small[-1] / 1000  # "thousands of times below"
    for table in ("orth_dev", "he_drift"):
        final_small = np.abs(getattr(small, table)[-1])
        final_large = np.abs(getattr(large, table)[-1])
        assert final_large.mean() > final_small.mean() and final_large.max() > final_small.max()
        assert final_large.mean() < 2 * final_small.mean()  # "slightly higher"
    assert "slightly higher" in PRESETS["lambda_too_large"].notice


# -- GOFT*: the deviation shown includes the input scale -------------------------------------------
def test_input_scaling_deviation_includes_the_scale() -> None:
    d = 16
    torch.manual_seed(0)
    layer = QGOFTLayer(nn.Linear(d, 8), "goft", scaling="input")
    with torch.no_grad():
        layer.qgoft_theta.uniform_(-1, 1)
        layer.qgoft_scale_in.uniform_(0.8, 1.2)
    rotation_only = GivensTree(d).gram_deviation(layer.block_table(torch.float64))
    assert rotation_only < 1e-12  # the rotation part is exact ...
    assert layer.orthogonality_deviation(torch.float64) > 0.1  # ... the deviation shown is not


# -- plain angles are ordinary at ±180°; only the tanh form saturates ------------------------------
def _angle_grad(angle_param: str, raw: float) -> float:
    torch.manual_seed(0)
    layer = QGOFTLayer(nn.Linear(8, 4), "goft", angle_param=angle_param)
    with torch.no_grad():
        layer.qgoft_theta.fill_(raw)
    x, target = torch.randn(32, 8), torch.randn(32, 4)
    ((layer(x) - target) ** 2).mean().backward()
    return float(layer.qgoft_theta.grad.abs().max())


def test_plain_half_turn_has_a_gradient_tanh_saturates() -> None:
    plain = _angle_grad("plain", math.pi)  # θ = 180°: a half-turn
    phi = 6.0  # θ = π tanh 6 ≈ 179.98°
    saturated = _angle_grad("tanh", phi)
    assert plain > 1e-3
    assert saturated < 1e-3 * plain
    # a plain angle past a half-turn is the same rotation as the wrapped one
    assert torch.allclose(givens_table(torch.tensor([3 * math.pi / 2])),
                          givens_table(torch.tensor([-math.pi / 2])), atol=1e-6)


# -- the numbers the texts quote come from the playground -------------------------------------------
def test_learn_text_example_is_the_playgrounds() -> None:
    from demos.learn_texts import LEARN_MARKDOWN
    from qgoft_core.viz.playground import input_scales_at_zero_angles, playground_view

    scales = input_scales_at_zero_angles(3, 1.5, 1.5)
    quoted = r"\mathrm{diag}(" + ", ".join(f"{v:g}" for v in scales) + ")"
    assert quoted in LEARN_MARKDOWN
    view = playground_view(3, 6, [0.0, 0.0], "quasi", 0.0, None, 0, 1.5, 1.5)
    assert np.allclose(view["operator"], np.diag(scales))
    assert view["block"]["penalty"] == 0 and abs(view["energy_rel_change"]) > 1e-3


def test_playground_note_try_this_holds() -> None:
    from demos.learn_texts import CHART_NOTES
    from qgoft_core.viz.playground import playground_view
    from ui.playground_tab import DEFAULT_ANGLES

    assert "d = 3 with the length of α at 1.5" in CHART_NOTES["playground-plot"]["try"]
    for seed in range(5):
        view = playground_view(3, 6, list(DEFAULT_ANGLES), "quasi", 0.0, None, seed, 1.5, 1.0)
        assert view["block"]["inner"] == 0 and view["block"]["penalty"] == 0
        assert abs(view["energy_rel_change"]) > 1e-3


# -- no text in these files says the penalty keeps things orthogonal ---------------------------------
OWNED_TEXT_FILES = ("demos/learn_texts.py", "qgoft_core/viz/playground.py", "ui/playground_tab.py",
                    "ui/learn_tab.py", "qgoft_core/tuners/qgoft/config.py", "demos/presets.py")
MISLEADING = ("nearly orthogonal", "near-orthogonal", "kept nearly", "keeps the blocks", "pulls them back",
              "nearly, not exactly", "angles saturate", "have saturated", "λ too large")


def test_no_text_claims_the_penalty_keeps_orthogonality() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for name in OWNED_TEXT_FILES:
        text = (root / name).read_text(encoding="utf-8").lower()
        for phrase in MISLEADING:
            assert phrase.lower() not in text, f"{name} says {phrase!r}"
        # "saturat..." only ever next to the tanh form, or denied ("not saturated", "nothing saturates")
        for match in re.finditer(r"saturat", text):
            window = text[max(0, match.start() - 200): match.end() + 200]
            denied = re.search(r"(not|nothing) $", text[max(0, match.start() - 8): match.start()])
            assert "tanh" in window or denied, f"{name}: {window!r}"
