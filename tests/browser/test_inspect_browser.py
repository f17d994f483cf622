"""The Inspect tab: upload checks and views directly, then in a real browser.

In the browser: a saved GOFT adapter (zip) shows its method, the per-layer
table, the angle heatmap and the saturation flag; a PEFT LoRA adapter (its two
files) fills column B; junk shows an error naming the problem while column A
keeps its report.
"""
from __future__ import annotations

import math
import re
import shutil

import pytest
import torch

from qgoft_core import QGOFTConfig, get_qgoft_model
from qgoft_core.explore.analysis import InspectionError
from tests.browser.browser_utils import (browser_page, build_test_app, launched, plot_svg, screenshot, wait_for_app,
                                 wait_until)
from tests.conftest import build_tiny
from ui.inspect_tab import UploadError, layer_table, run_inspection, stage_upload

TARGETS = ["query", "value"]  # tiny BERT: 2 blocks x 2 modules, d = 20 -> 19 angles each
SATURATED = 5


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> dict:
    """A GOFT adapter (zip, one layer with angles near pi) and a PEFT LoRA adapter (folder)."""
    root = tmp_path_factory.mktemp("adapters")
    model = get_qgoft_model(build_tiny("bert"), QGOFTConfig(method="goft", target_modules=TARGETS))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i, layer in enumerate(model.adapter_layers().values()):
            layer.qgoft_theta.copy_(0.2 * torch.randn(layer.qgoft_theta.shape, generator=generator))
            if i == 0:
                layer.qgoft_theta[:SATURATED] = math.pi - 0.01
    model.save_pretrained(root / "goft")
    goft_zip = shutil.make_archive(str(root / "goft"), "zip", root / "goft")

    from peft import LoraConfig, get_peft_model
    lora = get_peft_model(build_tiny("bert"), LoraConfig(r=2, target_modules=TARGETS, init_lora_weights=False))
    lora.save_pretrained(str(root / "lora"))
    short = get_qgoft_model(build_tiny("bert"), QGOFTConfig(method="goft", target_modules=TARGETS))
    with torch.no_grad():  # a short run: every angle within a degree
        for layer in short.adapter_layers().values():
            layer.qgoft_theta.copy_(0.01 * torch.randn(layer.qgoft_theta.shape, generator=generator))
    short.save_pretrained(root / "short")
    short_zip = shutil.make_archive(str(root / "short"), "zip", root / "short")
    junk = root / "junk.zip"
    junk.write_bytes(b"this is not a zip archive")
    return {"goft_zip": goft_zip, "short_zip": short_zip, "lora_files": [str(root / "lora" / "adapter_config.json"),
                                                 str(root / "lora" / "adapter_model.safetensors")],
            "junk": str(junk), "root": root}


# -- the tab's logic ------------------------------------------------------------------
def test_goft_zip_and_lora_files_are_inspected(adapters):
    goft = run_inspection([adapters["goft_zip"]], "none", 20)
    assert goft.method == "goft" and goft.source == "goft.zip" and len(goft.layers) == 4
    table = layer_table(goft)
    assert list(table.columns[:2]) == ["layer", "health"] and table.columns[-1] == "module"
    assert table["health"].tolist() == ["⚠ 1 flag", "ok", "ok", "ok"]
    assert table["layer"].tolist()[0] == "L0.query"
    assert table["params"].tolist() == [19] * 4
    lora = run_inspection(adapters["lora_files"], "none", 20)
    assert lora.method == "lora" and lora.source == "adapter_config.json + adapter_model.safetensors"


@pytest.mark.parametrize("names, message", [
    ([], "no file uploaded"),
    (["notes.txt"], "notes.txt: expected a .zip"),
    (["adapter_model.bin"], "pickle files are never read"),
    (["a.zip", "adapter_config.json"], "2 files are in the upload box"),
    (["adapter_config.json"], "need exactly one adapter_config.json and one .safetensors"),
])
def test_wrong_uploads_are_named(tmp_path, names, message):
    paths = []
    for name in names:
        (tmp_path / name).write_bytes(b"{}")
        paths.append(str(tmp_path / name))
    with pytest.raises(UploadError, match=message):
        stage_upload(paths, tmp_path, 20)


def test_size_limit_is_checked_before_reading(tmp_path):
    big = tmp_path / "big.zip"
    big.write_bytes(b"0" * (2 * 1024**2))
    with pytest.raises(UploadError, match=r"big.zip is 2.0 MB; this server inspects adapters up to 1 MB"):
        run_inspection([str(big)], "none", 1)


def test_side_by_side_figures_line_up(adapters):
    """Paired charts share one top margin (plot areas level); a histogram says "shared" only when both have one."""
    from ui.inspect_tab import side_figures

    goft, short, lora = (run_inspection(adapters[k] if k == "lora_files" else [adapters[k]], "none", 20)
                         for k in ("goft_zip", "short_zip", "lora_files"))
    updates = side_figures([goft, short], ["global", "global"], [None, None])
    a, b = ({k: u["value"] for k, u in zip(("heatmap", "histogram", "norms", "spectrum"), updates[i:i + 4])}
            for i in (0, 4))
    for key in a:
        assert a[key].layout.margin.t == b[key].layout.margin.t, key
    def text(fig) -> str:  # the title as read: tags and wrapped lines joined
        return " ".join(re.sub(r"<[^>]+>", " ", fig.layout.title.text).split())

    assert "shared by both columns" in text(a["histogram"])
    alone = side_figures([goft, lora], ["global", "global"], [None, None])[1]["value"]
    assert "from the data" in text(alone) and "shared" not in text(alone)


def test_junk_zip_is_an_inspection_error(adapters):
    with pytest.raises(InspectionError, match="junk.zip is not a valid zip file"):
        run_inspection([adapters["junk"]], "none", 20)


# -- in the browser ---------------------------------------------------------------------
def _table_text(page, suffix: str = "") -> str:
    return page.locator(f"#inspect-table{suffix}").inner_text()


def _plot_layout(page, elem_id: str) -> dict:
    """The drawn plotly layout (ranges as plotly resolved them) and the element's top on the page."""
    return page.evaluate("""(id) => {
        const root = document.getElementById(id);
        const plot = root && root.querySelector('.js-plotly-plot');
        if (!plot || !plot._fullLayout) return null;
        const l = plot._fullLayout;
        const area = plot.querySelector('.nsewdrag');
        return {x: l.xaxis.range, y: l.yaxis.range, height: l.height, top: root.getBoundingClientRect().top,
                area: area ? area.getBoundingClientRect().top : null};
    }""", elem_id)


@pytest.mark.browser
def test_inspect_tab_in_the_browser(adapters):
    demo, _ = build_test_app()
    with launched(demo) as url, browser_page() as page:
        wait_for_app(page, url)
        page.get_by_role("tab", name="Inspect").click()

        # A: a saved GOFT adapter as a zip
        page.locator("#inspect-upload input[type=file]").set_input_files(adapters["goft_zip"])
        plot_svg(page, "inspect-heatmap").wait_for(state="visible", timeout=60_000)
        wait_until(lambda: "L0.query" in _table_text(page), 30, message="the layer table")
        table = _table_text(page)
        assert table.count("GOFT") == 4 and "⚠ 1 flag" in table
        assert "GOFT" in page.locator("#inspect-summary").inner_text()
        # the flags are collapsed, their count in the accordion's label
        box = page.locator("#inspect-flags-box")
        assert "Health flags (1 raised)" in box.inner_text()
        assert not page.locator("#inspect-flags").is_visible()
        box.get_by_text("Health flags (1 raised)").click()
        page.locator("#inspect-flags").wait_for(state="visible", timeout=10_000)
        flags = page.locator("#inspect-flags").inner_text()
        assert f"{SATURATED} of 19 rotation angles are at a half-turn" in flags and "Checks run:" in flags
        assert page.locator("#inspect-heatmap .heatmaplayer image").count() == 1  # the drawn heatmap
        assert not page.locator("#inspect-error").is_visible()

        # B: a PEFT LoRA adapter given as its two files: LoRA's checks, no rotation check
        page.locator("#inspect-upload-b input[type=file]").set_input_files(adapters["lora_files"])
        wait_until(lambda: "LoRA" in _table_text(page, "-b"), 60, message="the LoRA table")
        label_b = page.locator("#inspect-flags-box-b").inner_text()
        assert "Health flags (0): none raised" in label_b and not page.locator("#inspect-flags-b").is_visible()
        # a section LoRA lacks still holds its place: the placeholder says why, at the same height
        wait_until(lambda: (_plot_layout(page, "inspect-histogram-b") or {}).get("height"), 30,
                   message="B's histogram placeholder")
        hist_a, hist_b = _plot_layout(page, "inspect-histogram"), _plot_layout(page, "inspect-histogram-b")
        assert hist_a["height"] == hist_b["height"] and abs(hist_a["top"] - hist_b["top"]) < 2
        assert "no rotation angles" in page.locator("#inspect-histogram-b").inner_text()
        page.locator("#inspect-table").scroll_into_view_if_needed()
        screenshot(page, "inspect_goft_vs_lora", full_page=True)

        # B: a short GOFT run: the two histograms and heatmaps line up and share their axes
        page.locator("#inspect-upload-b button[aria-label='Clear']").click()
        page.locator("#inspect-upload-b input[type=file]").set_input_files(adapters["short_zip"])
        wait_until(lambda: "GOFT" in _table_text(page, "-b"), 60, message="the short run's table")

        def shared() -> bool:
            a, b = _plot_layout(page, "inspect-histogram"), _plot_layout(page, "inspect-histogram-b")
            return bool(a and b and b["x"] and a["x"] == b["x"] and a["y"] == b["y"])
        wait_until(shared, 30, message="shared histogram axes")
        hist_a, hist_b = _plot_layout(page, "inspect-histogram"), _plot_layout(page, "inspect-histogram-b")
        assert hist_a["x"][1] == pytest.approx(180, abs=1)  # A's angles reach a half-turn: ±180 for both
        for key in ("summary", "table", "heatmap", "histogram", "norms"):
            a = page.locator(f"#inspect-{key}").bounding_box()
            b = page.locator(f"#inspect-{key}-b").bounding_box()
            assert abs(a["y"] - b["y"]) < 2, f"{key} starts at {a['y']} in A, {b['y']} in B"
        heat_a, heat_b = _plot_layout(page, "inspect-heatmap"), _plot_layout(page, "inspect-heatmap-b")
        assert heat_a["height"] == heat_b["height"]
        for key in ("heatmap", "histogram", "norms"):  # the plot areas themselves start level
            a, b = _plot_layout(page, f"inspect-{key}"), _plot_layout(page, f"inspect-{key}-b")
            assert a["area"] is not None and b["area"] is not None, key
            assert abs(a["area"] - b["area"]) < 2, f"{key}: plot area at {a['area']} in A, {b['area']} in B"
        page.locator("#inspect-row-histogram").scroll_into_view_if_needed()
        screenshot(page, "inspect_side_by_side_shared_axes")

        # B alone would have its own range: the short run's angles within a degree or two
        page.locator("#inspect-upload button[aria-label='Clear']").click()
        wait_until(lambda: (_plot_layout(page, "inspect-histogram-b") or {}).get("x", [0, 180])[1] < 10, 30,
                   message="B's histogram range following its own data")
        page.locator("#inspect-row-histogram").scroll_into_view_if_needed()
        screenshot(page, "inspect_short_run_histogram")

        # B again: junk gives a visible error naming the problem
        page.locator("#inspect-upload-b button[aria-label='Clear']").click()
        page.locator("#inspect-upload-b input[type=file]").set_input_files(adapters["junk"])
        error = page.locator("#inspect-error-b")
        error.wait_for(state="visible", timeout=30_000)
        assert "junk.zip is not a valid zip file" in error.inner_text()
        assert not page.locator("#inspect-table-b").is_visible()
        page.locator("#inspect-tab").scroll_into_view_if_needed()
        screenshot(page, "inspect_junk_error")


# -- ours beside a stock PEFT LoRA, both with the offline default model as base -------------------------
# Each header, scrolled into view inside its table, shows its whole text: not clipped by its cell and no
# word broken across lines (the text of `_HEADERS_JS` is a list of what is cut; empty when all read in full).
_HEADERS_JS = """(id) => {
  const root = document.getElementById(id);
  const viewport = root.querySelector('.virtual-table-viewport') || root;
  const pinned = root.querySelector('thead th');
  const cut = [];
  for (const th of root.querySelectorAll('thead th')) {
    const span = th.querySelector('.header') || th;
    const text = span.innerText.trim();
    viewport.scrollLeft = 0;
    if (th !== pinned) viewport.scrollLeft = th.offsetLeft - pinned.offsetWidth;
    const s = span.getBoundingClientRect(), v = viewport.getBoundingClientRect();
    const left = th === pinned ? v.left : pinned.getBoundingClientRect().right;
    if (span.scrollWidth > span.clientWidth + 1 || span.scrollHeight > span.clientHeight + 1)
      cut.push(`${text}: clipped by its cell`);
    if (s.left < left - 1 || s.right > v.right + 1) cut.push(`${text}: not wholly in view when scrolled to`);
    const node = [...span.childNodes].find(n => n.nodeType === 3 && n.textContent.trim());
    let at = 0;
    for (const word of (node ? node.textContent : '').split(' ')) {
      const range = document.createRange();
      range.setStart(node, at); range.setEnd(node, at + word.length); at += word.length + 1;
      const tops = new Set([...range.getClientRects()].filter(r => r.width).map(r => Math.round(r.top)));
      if (tops.size > 1) cut.push(`${text}: the word ${word} is broken across lines`);
    }
  }
  viewport.scrollLeft = 0;
  return cut;
}"""


@pytest.fixture(scope="module")
def minilm_adapters(tmp_path_factory) -> dict:
    """A GOFT adapter of the real offline MiniLM (our zip) and a stock PEFT LoRA of it (query, value), which
    records the folder it was loaded from (site-packages)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    from qgoft_core.explore.models import default_model_path
    root = tmp_path_factory.mktemp("minilm")
    generator = torch.Generator().manual_seed(0)
    ours = get_qgoft_model(AutoModel.from_pretrained(str(default_model_path())), QGOFTConfig(method="goft"))
    with torch.no_grad():
        for layer in ours.adapter_layers().values():
            layer.qgoft_theta.copy_(0.05 * torch.randn(layer.qgoft_theta.shape, generator=generator))
    ours.save_pretrained(root / "ours")
    lora = get_peft_model(AutoModel.from_pretrained(str(default_model_path())),
                          LoraConfig(r=4, target_modules=TARGETS, init_lora_weights=False))
    lora.save_pretrained(str(root / "lora"))
    return {"ours": shutil.make_archive(str(root / "ours"), "zip", root / "ours"),
            "lora": [str(root / "lora" / "adapter_config.json"), str(root / "lora" / "adapter_model.safetensors")]}


@pytest.mark.browser
@pytest.mark.parametrize("width", [1440, 1024])
def test_ours_beside_a_peft_lora_reads_in_full(served, minilm_adapters, width):
    """Ours in A, a PEFT LoRA in B, with the base: every table header reads in full, B has no heatmap
    colours (LoRA has no heatmap), both spectra open on the same layer with one y range, and the recorded
    base is the model's name, not a path."""
    url, _ = served
    with browser_page(viewport={"width": width, "height": 900}) as page:
        wait_for_app(page, url)
        page.get_by_role("tab", name="Inspect").click()
        page.locator("#inspect-base").get_by_text("the offline default model").click()
        page.locator("#inspect-upload input[type=file]").set_input_files(minilm_adapters["ours"])
        wait_until(lambda: _plot_layout(page, "inspect-spectrum"), 120, message="A's spectrum")
        page.locator("#inspect-upload-b input[type=file]").set_input_files(minilm_adapters["lora"])
        wait_until(lambda: "LoRA" in _table_text(page, "-b"), 120, message="the LoRA table")

        def paired() -> bool:
            a, b = _plot_layout(page, "inspect-spectrum"), _plot_layout(page, "inspect-spectrum-b")
            names = [page.locator(f"#inspect-spectrum-layer{s} input").input_value() for s in ("", "-b")]
            return bool(a and b and names[0] and names[0] == names[1] and a["y"] == b["y"])
        wait_until(paired, 60, message="both spectra on one layer, one y range")
        layer = page.locator("#inspect-spectrum-layer input").input_value()
        assert layer.split(".")[-1] in TARGETS  # a layer LoRA adapted too
        assert page.locator("#inspect-heat-scale").is_visible()
        assert not page.locator("#inspect-heat-scale-b").is_visible()
        for suffix in ("", "-b"):
            summary = page.locator(f"#inspect-summary{suffix}").inner_text()
            assert "site-packages" not in summary and "sentence-transformers/all-MiniLM-L6-v2" in summary
        headers = {s: page.locator(f"#inspect-table{s} thead th").all_inner_texts() for s in ("", "-b")}
        assert "‖ΔW‖/‖W‖" in " ".join(headers["-b"]) and "max |angle|" in " ".join(headers[""])
        cut = {s or "A": page.evaluate(_HEADERS_JS, f"inspect-table{s}") for s in ("", "-b")}
        page.locator("#inspect-table").scroll_into_view_if_needed()
        screenshot(page, f"inspect_ours_vs_lora_{width}", full_page=True)
        assert not any(cut.values()), f"headers not readable in full: {cut}"
