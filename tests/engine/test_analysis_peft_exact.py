"""The inspector's numbers for PEFT adapters agree with PEFT's own code path.

Each adapter is built by PEFT (0.21) on a tiny random BERT, given small or
large random parameters and saved with save_pretrained; the reference is PEFT
itself: the adapter loaded back with PeftModel.from_pretrained in float64 and
merged (merge_and_unload), so that W' = W M gives M = pinv(W) W' exactly
(the targeted layers have out >= in features, so W has full column rank).
"""
import copy
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from qgoft_core.explore.analysis import inspect_adapter
from qgoft_core.explore.analysis.peft_boft import boft_input_operator
from qgoft_core.explore.analysis.peft_lora import lora_scaling
from qgoft_core.explore.analysis.peft_oft import cayley_neumann, oft_input_operator, skew_from_vector

pytestmark = pytest.mark.usefixtures("one_thread")
TARGETS = ["query", "value", "intermediate.dense"]  # 32 -> 32, 32 -> 32, 32 -> 64: all out >= in
REL = 0.02  # the agreement asked of every number (measured agreement is ~1e-12, see the asserts' margins)


@pytest.fixture(scope="module")
def bert():
    """A tiny BERT from a config, random weights (no download, no tokenizer)."""
    import transformers as tf
    torch.manual_seed(0)
    cfg = tf.BertConfig(vocab_size=30, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=16)
    model = tf.BertModel(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def save_random_adapter(bert, folder: Path, config, std: float, seed: int = 0):
    """PEFT's model on a copy of `bert`, every adapter parameter set to N(0, std) (BOFT's boft_s: 1 + N(0, std))."""
    from peft import get_peft_model
    model = get_peft_model(copy.deepcopy(bert), config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                noise = std * torch.randn(p.shape, generator=generator)
                p.copy_(1.0 + noise if name.endswith("boft_s.default") else noise)
    model.save_pretrained(str(folder))
    return model


def peft_reference(bert, folder: Path) -> dict:
    """{module: (W, W', PEFT layer)} in float64, W' from PEFT's own merge of the saved adapter."""
    from peft import PeftModel
    loaded = PeftModel.from_pretrained(copy.deepcopy(bert).double(), str(folder)).double()
    layers = {n: m for n, m in loaded.base_model.model.named_modules()
              if hasattr(m, "get_base_layer") and n.endswith(tuple(TARGETS))}
    originals = {n: m.get_base_layer().weight.detach().clone() for n, m in layers.items()}
    deltas = {n: m.get_delta_weight("default") for n, m in layers.items()}
    merged = loaded.merge_and_unload()
    return {n: (originals[n], merged.get_submodule(n).weight.detach().clone(), deltas[n]) for n in layers}


def operator_from_merge(w: torch.Tensor, merged: torch.Tensor) -> torch.Tensor:
    """M with W' = W M (least squares; exact here since W has full column rank)."""
    return torch.linalg.lstsq(w, merged).solution


def orth_dev(m: torch.Tensor) -> float:
    return float((m.T @ m - torch.eye(m.shape[1], dtype=m.dtype)).norm()) / math.sqrt(m.shape[1])


def rows_by_module(report) -> dict:
    return {r["module"]: r for r in report.layers}


# -- OFT --------------------------------------------------------------------------------------
OFT_FORMS = [("neumann", n) for n in range(1, 9)] + [("exact", None)]


@pytest.mark.parametrize("std", [0.02, 0.3], ids=["small", "large"])
@pytest.mark.parametrize("form, terms", OFT_FORMS, ids=[f"{f}-{t}" if t else f for f, t in OFT_FORMS])
def test_oft_orthogonality_matches_peft_merged_weight(bert, tmp_path, form, terms, std):
    from peft import OFTConfig
    config = OFTConfig(r=0, oft_block_size=8, use_cayley_neumann=form == "neumann",
                       num_cayley_neumann_terms=terms or 5, target_modules=TARGETS)
    save_random_adapter(bert, tmp_path / "oft", config, std)
    report = inspect_adapter(tmp_path / "oft")
    rows = rows_by_module(report)
    reference = peft_reference(bert, tmp_path / "oft")
    assert set(rows) == set(reference) and len(rows) == 6
    for name, (w, merged, delta) in reference.items():
        m = operator_from_merge(w, merged)
        np.testing.assert_allclose(m.numpy(), delta.T.numpy(), atol=1e-9 * max(1.0, float(m.abs().max())))
        expected = orth_dev(m)
        assert rows[name]["orth dev"] == pytest.approx(expected, rel=REL, abs=1e-12), (name, terms, std)
        assert rows[name]["orth dev"] == pytest.approx(expected, rel=1e-8, abs=1e-12)  # in fact exact
    if form == "exact":
        assert max(r["orth dev"] for r in rows.values()) < 1e-12


def test_peft_series_for_two_and_three_terms_is_what_the_inspector_uses():
    """The two cases the old rebuild got wrong, written out: 2 terms I + 2Q; 3 terms I + 2Q + 2Q^2 + Q^3."""
    q = skew_from_vector(0.3 * torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)), 4)
    eye = torch.eye(4, dtype=torch.float64)
    torch.testing.assert_close(cayley_neumann(q, 1), eye.expand_as(q))
    torch.testing.assert_close(cayley_neumann(q, 2), eye + 2 * q)
    torch.testing.assert_close(cayley_neumann(q, 3), eye + 2 * q + 2 * q @ q + q @ q @ q)
    torch.testing.assert_close(cayley_neumann(q, 4), cayley_neumann(q, 3))  # PEFT's loop: 4 terms == 3 terms
    torch.testing.assert_close(cayley_neumann(q, 5), eye + 2 * q + 2 * q @ q + 2 * q @ q @ q + q @ q @ q @ q)


@pytest.mark.parametrize("variant", ["r", "block_share", "coft"])
def test_oft_variants_rebuild_peft_operator(bert, tmp_path, variant):
    from peft import OFTConfig
    options = {"r": dict(r=4, oft_block_size=0),  # blocks given by count: b = in / r
               "block_share": dict(oft_block_size=8, block_share=True),
               "coft": dict(oft_block_size=8, coft=True, eps=0.05)}[variant]
    config = OFTConfig(target_modules=TARGETS, num_cayley_neumann_terms=3, **options)
    model = save_random_adapter(bert, tmp_path / "oft", config, 0.2)
    report = inspect_adapter(tmp_path / "oft")
    rows = rows_by_module(report)
    reference = peft_reference(bert, tmp_path / "oft")
    stored = {n: m.oft_R["default"].weight.detach() for n, m in model.base_model.model.named_modules()
              if hasattr(m, "oft_R") and n.endswith(tuple(TARGETS))}
    for name, (w, merged, _) in reference.items():
        m = operator_from_merge(w, merged)
        ours = oft_input_operator(stored[name], report.config, in_features=w.shape[1])
        np.testing.assert_allclose(ours.numpy(), m.numpy(), atol=1e-9)
        assert rows[name]["orth dev"] == pytest.approx(orth_dev(m), rel=1e-8, abs=1e-12)
    if variant == "block_share":
        assert all(r["n/r"] == 1 and r["d"] is None for r in rows.values())
        with_base = inspect_adapter(tmp_path / "oft", base_model=_as_base(bert))
        assert {r["module"]: r["n/r"] for r in with_base.layers} == {n: 4 for n in rows}
    if variant == "coft":
        assert any("COFT" in note for note in report.notes)


def _as_base(bert):
    from qgoft_core.explore.models import BaseModel
    return BaseModel("tiny-bert-from-config", bert, None, "mean")


def _orth_dev_column(text: str) -> dict:
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("layer "))
    names = re.split(r"\s{2,}", lines[header].strip())
    column = names.index("orth dev")
    values = {}
    for line in lines[header + 2:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        values[cells[0]] = float(cells[column])
    return values


@pytest.mark.parametrize("terms", [2, 3])
def test_cli_prints_peft_orthogonality(bert, tmp_path, capsys, terms):
    from peft import OFTConfig
    from qgoft_core.cli import main
    from qgoft_core.viz.figures import short_layer_name
    config = OFTConfig(oft_block_size=8, num_cayley_neumann_terms=terms, target_modules=TARGETS)
    save_random_adapter(bert, tmp_path / "oft", config, 0.02)
    assert main(["inspect", str(tmp_path / "oft")]) == 0
    printed = _orth_dev_column(capsys.readouterr().out)
    reference = peft_reference(bert, tmp_path / "oft")
    assert len(printed) == len(reference) == 6
    for name, (w, merged, _) in reference.items():
        expected = orth_dev(operator_from_merge(w, merged))
        assert printed[short_layer_name(name)] == pytest.approx(expected, rel=REL)


def test_python_m_qgoft_core_inspect_prints_peft_orthogonality(bert, tmp_path):
    from peft import OFTConfig
    from qgoft_core.viz.figures import short_layer_name
    config = OFTConfig(oft_block_size=8, num_cayley_neumann_terms=2, target_modules=TARGETS)
    save_random_adapter(bert, tmp_path / "oft", config, 0.02)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "qgoft_core", "inspect", str(tmp_path / "oft")], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = _orth_dev_column(done.stdout)
    for name, (w, merged, _) in peft_reference(bert, tmp_path / "oft").items():
        assert printed[short_layer_name(name)] == pytest.approx(orth_dev(operator_from_merge(w, merged)), rel=REL)


# -- LoRA -------------------------------------------------------------------------------------
LORA_CASES = {
    "alpha/r": dict(r=4, lora_alpha=8),
    "rslora": dict(r=4, lora_alpha=8, use_rslora=True),
    "patterns": dict(r=4, lora_alpha=8, rank_pattern={"value": 2}, alpha_pattern={"query": 3}),
}


@pytest.mark.parametrize("case", list(LORA_CASES))
@pytest.mark.parametrize("std", [0.05, 1.0], ids=["small", "large"])
def test_lora_norm_and_effective_rank_match_peft_delta(bert, tmp_path, case, std):
    from peft import LoraConfig
    save_random_adapter(bert, tmp_path / "lora", LoraConfig(target_modules=TARGETS, **LORA_CASES[case]), std)
    report = inspect_adapter(tmp_path / "lora")
    rows = rows_by_module(report)
    reference = peft_reference(bert, tmp_path / "lora")
    assert len(rows) == 6
    for name, (w, merged, delta) in reference.items():
        np.testing.assert_allclose((merged - w).numpy(), delta.numpy(), atol=1e-12)  # PEFT merges W + s B A
        sv = torch.linalg.svdvals(merged - w)
        sv = sv[: rows[name]["n/r"]]  # the update's rank is at most r
        p = (sv / sv.sum()).numpy()
        assert rows[name]["‖ΔW‖_F"] == pytest.approx(float((merged - w).norm()), rel=1e-9)
        assert rows[name]["eff. rank"] == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-6)
    if case == "rslora":
        assert any("sqrt(r)" in note for note in report.notes)


def test_lora_scaling_is_peft_scaling(bert, tmp_path):
    from peft import LoraConfig
    model = save_random_adapter(bert, tmp_path / "lora", LoraConfig(target_modules=TARGETS,
                                                                    **LORA_CASES["patterns"]), 0.1)
    report = inspect_adapter(tmp_path / "lora")
    for name, layer in model.base_model.model.named_modules():
        if hasattr(layer, "scaling") and name.endswith(tuple(TARGETS)):
            assert lora_scaling(report.config, name, layer.r["default"]) == layer.scaling["default"]


# -- BOFT -------------------------------------------------------------------------------------
@pytest.fixture
def butterfly_on_cpu(monkeypatch):
    """Let PEFT keep several butterfly factors on a CPU: its CUDA block-diagonal kernel, done by torch."""
    from peft.tuners.boft import layer as boft_layer
    monkeypatch.setattr(boft_layer, "get_fbd_cuda", lambda: True)
    monkeypatch.setattr(boft_layer.FastBlockDiag, "apply",
                        staticmethod(lambda r: torch.stack([torch.block_diag(*factor) for factor in r])))


@pytest.mark.parametrize("factors", [1, 2, 3])
@pytest.mark.parametrize("std", [0.05, 0.5], ids=["small", "large"])
def test_boft_operator_and_scales_match_peft_merged_weight(bert, tmp_path, butterfly_on_cpu, factors, std):
    from peft import BOFTConfig
    config = BOFTConfig(boft_block_size=4, boft_n_butterfly_factor=factors, target_modules=TARGETS)
    model = save_random_adapter(bert, tmp_path / "boft", config, std)
    report = inspect_adapter(tmp_path / "boft")
    rows = rows_by_module(report)
    reference = peft_reference(bert, tmp_path / "boft")
    stored = {n: m.boft_R["default"].detach() for n, m in model.base_model.model.named_modules()
              if hasattr(m, "boft_R") and n.endswith(tuple(TARGETS))}
    for name, (w, merged, (_, boft_s)) in reference.items():
        s = boft_s.detach().reshape(-1)
        assert stored[name].shape[0] == factors
        # PEFT merges W' = diag(s) W B^T: M from the merge with the scales divided out
        m = operator_from_merge(w, merged / s[:, None])
        np.testing.assert_allclose(boft_input_operator(stored[name]).numpy(), m.numpy(), atol=1e-9)
        assert rows[name]["orth dev"] < 1e-12 and orth_dev(m) < 1e-12
        np.testing.assert_allclose(report.scales[name], s.numpy(), rtol=1e-7)  # float32 file, float64 PEFT
        ratios = (merged.norm(dim=1) / w.norm(dim=1)).numpy()
        np.testing.assert_allclose(np.abs(report.scales[name]), ratios, rtol=1e-6)
        assert rows[name]["d"] == w.shape[1] and rows[name]["n/r"] == w.shape[0]
        if factors == 1:  # the blocks are M's: their angles are M's eigenvalue phases
            phases = np.sort(np.abs(np.angle(np.linalg.eigvals(m.numpy()))))[::-1][::2]
            np.testing.assert_allclose(np.sort(report.angles[name]), np.sort(phases), atol=1e-9)
        else:
            assert report.angles[name].size == factors * w.shape[1] // 2


def test_oft_config_without_series_keys_uses_peft_defaults(bert, tmp_path):
    """PEFT's OFTConfig defaults: use_cayley_neumann=True, 5 terms (the inspector once assumed the exact form)."""
    import json
    from peft import OFTConfig
    save_random_adapter(bert, tmp_path / "oft", OFTConfig(oft_block_size=8, target_modules=TARGETS), 0.3)
    reference = {n: orth_dev(delta.T) for n, (_, _, delta) in peft_reference(bert, tmp_path / "oft").items()}
    path = tmp_path / "oft" / "adapter_config.json"
    config = json.loads(path.read_text())
    assert config["use_cayley_neumann"] is True and config["num_cayley_neumann_terms"] == 5
    assert not any("older than 0.18" in note for note in inspect_adapter(tmp_path / "oft").notes)
    for key in ("use_cayley_neumann", "num_cayley_neumann_terms", "peft_version"):
        config.pop(key, None)
    path.write_text(json.dumps(config))
    report = inspect_adapter(tmp_path / "oft")
    for row in report.layers:
        assert row["orth dev"] == pytest.approx(reference[row["module"]], rel=1e-9)
    assert any("5 terms" in note for note in report.notes)
    assert any("older than 0.18" in note for note in report.notes)  # PEFT: no peft_version = before 0.18
