"""Inspect tab: look inside a saved adapter without training anything.

Upload an adapter (a .zip of its folder, or its two files adapter_config.json
and adapter_model.safetensors): ours (GOFT / qGOFT) or a PEFT LoRA, OFT or
BOFT one. ``qgoft_core.explore.analysis.inspect_adapter`` does all the reading and
measuring and ``qgoft_core.viz.inspection_figures`` draws the figures; this
module checks the upload (names, sizes), stages the files and shows the
report: summary, health flags, a sortable per-layer table, the angle heatmap
and histogram, norm changes and, with the base model, the spectra.
Two adapters can be inspected side by side (A and B), laid out one row per
section so that each section starts at the same height in both columns; the
flags sit in a closed accordion whose label counts them, the angle
histograms and norm charts share their axis ranges, the two spectra open on
the same (corresponding) layer and share their y range, and each pair of charts
one top margin (their plot areas start level however their titles wrap). A
column shows only the controls that apply to its adapter (no heatmap colours
for LoRA, no spectrum menu without the base).
Anything malformed shows a message naming the problem; the other side and
the rest of the app are untouched.
"""
from __future__ import annotations

import html
import shutil
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from qgoft_core.explore.analysis import (COLUMN_NOTES, COLUMNS, CONFIG_NAME, PICKLE_SUFFIXES, SATURATION_FRACTION,
                                        WEIGHTS_NAME, AdapterReport, InspectionError, inspect_adapter,
                                        threshold_text)
from qgoft_core.viz import inspection_figures as IF
from qgoft_core.viz.style import share_top_margin
from ui.context import AppContext

BASE_CHOICES = [("none: the adapter file alone", "none"),
                ("the offline default model (all-MiniLM-L6-v2)", "default")]
ZIP_EXPANSION = 2  # an unpacked zip may hold at most this many times the upload limit (zip bombs)
FIGURE_KEYS = ("angle_heatmap", "angle_histogram", "norm_changes", "spectrum")


class UploadError(ValueError):
    """An upload that is not an adapter we can read; the message names the problem."""


def _name(path: str | Path) -> str:
    return Path(path).name


def _size_mb(path: Path) -> float:
    return path.stat().st_size / 1024**2


def stage_upload(files: list[str] | str | None, workdir: Path, max_mb: float) -> Path:
    """The path ``inspect_adapter`` should read: the uploaded .zip, or a folder with the two files.

    Checks names and sizes before anything is read, so a wrong or huge upload
    is refused with a sentence that says what was expected.
    """
    if not files:
        raise UploadError("no file uploaded")
    paths = [Path(f) for f in ([files] if isinstance(files, (str, Path)) else files)]
    for path in paths:
        if not path.is_file():
            raise UploadError(f"{_name(path)} could not be read back from the upload")
        if _size_mb(path) > max_mb:
            raise UploadError(f"{_name(path)} is {_size_mb(path):.1f} MB; this server inspects adapters "
                              f"up to {max_mb:g} MB (QGOFT_MAX_UPLOAD_MB)")
    pickles = [p.name for p in paths if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise UploadError(f"{', '.join(pickles)}: pickle files are never read (loading one can run "
                          "arbitrary code); save the adapter with safetensors "
                          "(save_pretrained(..., safe_serialization=True))")
    zips = [p for p in paths if p.suffix.lower() == ".zip"]
    if zips:
        if len(paths) > 1:
            raise UploadError(f"{len(paths)} files are in the upload box: give either one .zip of the "
                              "adapter folder or its two files (remove the others with ×)")
        return zips[0]
    configs = [p for p in paths if p.suffix.lower() == ".json"]
    weights = [p for p in paths if p.suffix.lower() == ".safetensors"]
    others = [p.name for p in paths if p not in configs and p not in weights]
    if others:
        raise UploadError(f"{', '.join(others)}: expected a .zip of the adapter folder, or "
                          f"{CONFIG_NAME} and {WEIGHTS_NAME}")
    if len(configs) != 1 or len(weights) != 1:
        raise UploadError(f"need exactly one {CONFIG_NAME} and one .safetensors weights file; got "
                          f"{len(configs)} .json and {len(weights)} .safetensors file(s)")
    folder = workdir / "adapter"
    folder.mkdir()
    shutil.copyfile(configs[0], folder / CONFIG_NAME)
    shutil.copyfile(weights[0], folder / WEIGHTS_NAME)
    return folder


def _layer_flag_counts(report: AdapterReport) -> list[int]:
    return [len(report.layer_flags.get(row["module"], [])) for row in report.layers]


# Column widths of the per-layer table: headers wrap at their spaces inside these ("max |angle| (deg)"
# on two lines), so no header is cut short; a word never breaks (the browser test measures it at
# 1440 and 1024 px). Wider than the table's half of the page, it scrolls sideways, the layer pinned.
TABLE_WIDTHS = {"layer": 125, "health": 90, "kind": 80, "d": 60, "n/r": 60, "params": 80, "max |angle| (deg)": 95,
                "mean |angle| (deg)": 95, "orth dev": 95, "scale min": 85, "scale max": 85, "reflections": 120,
                "‖ΔW‖_F": 90, "‖ΔW‖/‖W‖": 105, "eff. rank": 85, "HE drift": 95, "norm ratio min": 105,
                "norm ratio max": 105, "module": 320}


def table_widths(frame: pd.DataFrame) -> list[str]:
    return [f"{TABLE_WIDTHS.get(c, 100)}px" for c in frame.columns]


def table_label(frame: pd.DataFrame) -> str:
    return (f"per-layer table: {len(frame)} layers, {len(frame.columns)} columns (scroll sideways; click a "
            "header to sort; the columns are explained under the charts)")


def layer_table(report: AdapterReport) -> pd.DataFrame:
    """Per-layer rows (columns that have any value), with a health column first after the name.

    "layer" is the report's one displayed name (the same in the flags, the
    spectrum's dropdown and the figures); the full module path is the last column.
    """
    columns = [c for c in COLUMNS if c != "module" and any(r.get(c) is not None for r in report.layers)]
    columns.append("module")
    frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in report.layers], columns=columns)
    counts = _layer_flag_counts(report)
    checked = bool(report.checks_ran)
    frame.insert(1, "health", [("ok" if checked else "not checked") if n == 0 else
                               f"⚠ {n} flag{'s' if n > 1 else ''}" for n in counts])
    # 4 significant digits, still numbers (so columns sort numerically); 1e-7 must not round to 0
    return frame.map(lambda v: float(f"{v:.4g}") if isinstance(v, float) else v)


def summary_markdown(report: AdapterReport) -> str:
    lines = ["| property | value |", "| --- | --- |"]
    lines += [f"| {row['item']} | {str(row['value']).replace('|', '/')} |" for row in report.summary_rows()
              if row["item"] != "health checks"]
    return "\n".join(lines)


def flags_label(report: AdapterReport) -> str:
    """The flags accordion's label: the count, or that nothing was checked (no symbol: the page font has no ⚠)."""
    if not report.checks_ran:
        return "Health flags: no check applies (nothing was checked)"
    n = len(report.flags)
    return f"Health flags ({n} raised)" if n else "Health flags (0): none raised"


def flags_markdown(report: AdapterReport) -> str:
    """The flags, then which checks ran (and which did not), then the report's notes."""
    if report.flags:
        text = f"**Health flags ({len(report.flags)}):**\n" + "\n".join(f"- ⚠ {flag}" for flag in report.flags)
    elif report.checks_ran:
        text = "**Health flags: none raised** by the checks that ran."
    else:
        text = "**No health check applies to this adapter**: nothing was checked, so this says nothing about its health."
    text += f"\n\n*{report.checks_text[0].upper() + report.checks_text[1:]}.* Rules: {threshold_text(report.method)}."
    text += "".join(f"\n\n*Note:* {note}" for note in report.notes)
    return text


def run_inspection(files: Any, base_choice: str, max_mb: float) -> AdapterReport:
    """Stage the upload and inspect it (with the base model when asked)."""
    with tempfile.TemporaryDirectory(prefix="qgoft-upload-") as tmp:
        target = stage_upload(files, Path(tmp), max_mb)
        base = None if base_choice in (None, "", "none") else base_choice
        report = inspect_adapter(target, base_model=base, max_bytes=int(ZIP_EXPANSION * max_mb * 1024**2))
        if target.is_dir():  # the staged folder's name means nothing to the user
            report.source = f"{CONFIG_NAME} + {WEIGHTS_NAME}"
    return report


class _Side:
    """The components of one column (A or B); `build_inspect_tab` lays them out row by row."""

    def __init__(self, label: str, suffix: str):
        self.label, self.suffix = label, suffix
        self.report = gr.State(None)

    def header(self) -> None:
        gr.Markdown(f"### Adapter {self.label}")
        self.upload = gr.File(file_count="multiple", file_types=[".zip", ".json", ".safetensors"],
                              type="filepath", label=f"adapter {self.label}: a .zip of the folder, or "
                              f"{CONFIG_NAME} + {WEIGHTS_NAME}", elem_id=f"inspect-upload{self.suffix}")
        self.error = gr.HTML(visible=False, elem_id=f"inspect-error{self.suffix}")

    def section(self, key: str) -> None:
        """One section of this column (the other column has the same one in the same row)."""
        s = self.suffix
        if key == "summary":
            self.summary = gr.Markdown(visible=False, elem_id=f"inspect-summary{s}")
        elif key == "flags":
            with gr.Accordion("Health flags", open=False, visible=False,
                              elem_id=f"inspect-flags-box{s}") as self.flags_box:
                self.flags = gr.Markdown(elem_id=f"inspect-flags{s}")
        elif key == "table":
            self.table = gr.Dataframe(interactive=False, max_height=420, show_search="filter", visible=False,
                                      label="per-layer table (click a column header to sort)", wrap=True,
                                      pinned_columns=1, elem_id=f"inspect-table{s}")
            self.missing = gr.Markdown(elem_id=f"inspect-missing{s}")
        elif key == "heat_scale":  # a row of its own: hidden for an adapter without angles, the heatmaps stay level
            self.heat_scale = gr.Radio([("one colour scale for all layers", "global"),
                                        ("each layer on its own scale", "layer")], value="global", visible=False,
                                       label="angle heatmap colours", elem_id=f"inspect-heat-scale{s}")
        elif key == "heatmap":
            self.heatmap = gr.Plot(show_label=False, visible=False, elem_id=f"inspect-heatmap{s}")
        elif key == "histogram":
            self.histogram = gr.Plot(show_label=False, visible=False, elem_id=f"inspect-histogram{s}")
        elif key == "norms":
            self.norms = gr.Plot(show_label=False, visible=False, elem_id=f"inspect-norms{s}")
        elif key == "spectrum":
            self.spectrum_layer = gr.Dropdown(choices=[], label="layer for the spectrum", visible=False,
                                              interactive=True, elem_id=f"inspect-spectrum-layer{s}")
            self.spectrum = gr.Plot(show_label=False, visible=False, elem_id=f"inspect-spectrum{s}")

    @property
    def outputs(self) -> list:
        return [self.error, self.summary, self.flags_box, self.flags, self.table, self.missing,
                self.heat_scale, self.spectrum_layer, self.report]

    @property
    def figures(self) -> list:
        return [self.heatmap, self.histogram, self.norms, self.spectrum]


SECTIONS = ("summary", "flags", "table", "heat_scale", "heatmap", "histogram", "norms", "spectrum")


def controls_shown(report: AdapterReport) -> dict[str, bool]:
    """The controls that apply to this adapter: the heatmap colours need angles (LoRA has none), the
    spectrum's layer menu needs the base model."""
    return {"heat_scale": bool(report.angles), "spectrum_layer": bool(report.spectra)}


def error_html(message: str) -> str:
    return ('<div role="alert" style="border:1px solid #c62828;border-left:6px solid #c62828;'
            'background:#fdecea;color:#7f1d1d;padding:.6em .9em;border-radius:6px">'
            f"<strong>Cannot inspect this upload:</strong> {html.escape(message)}</div>")


def _cleared(side: _Side, message: str | None) -> dict:
    """No results; an error message when there is one."""
    return {side.error: gr.update(value=error_html(message) if message else "", visible=message is not None),
            side.summary: gr.update(value="", visible=False),
            side.flags_box: gr.update(visible=False, open=False), side.flags: "",
            side.table: gr.update(value=None, visible=False), side.missing: "",
            side.heat_scale: gr.update(visible=False),
            side.spectrum_layer: gr.update(choices=[], value=None, visible=False), side.report: None}


def missing_views(report: AdapterReport) -> str:
    """Which charts are left out for this adapter, and why (instead of empty placeholders)."""
    missing = []
    if not report.angles:
        missing.append(f"{report.method_label} has no rotation angles, so there is no angle heatmap "
                       "or histogram.")
    if not (report.norm_ratios or report.scales or report.spectra):
        missing.append("Per-neuron norm changes, energy drift and the spectra of W and W′ need the "
                       "base model: choose it above.")
    return "\n\n".join(f"*{m}*" for m in missing)


def spectrum_choices(report: AdapterReport) -> list[tuple[str, str]]:
    """(displayed name, module path) per layer with a spectrum: named as in the table."""
    return [(report.layer_name(name), name) for name in report.spectra]


def module_info(report: AdapterReport | None, module: str | None) -> str:
    return f"module: {module}" if report is not None and module else ""


def _filled(side: _Side, report: AdapterReport) -> dict:
    layer = report.spectrum_layer()
    shown = controls_shown(report)
    table = layer_table(report)
    return {side.error: gr.update(value="", visible=False),
            side.summary: gr.update(value=summary_markdown(report), visible=True),
            side.flags_box: gr.update(label=flags_label(report), visible=True, open=False),
            side.flags: flags_markdown(report),
            side.table: gr.update(value=table, visible=True, column_widths=table_widths(table),
                                  label=table_label(table)),
            side.missing: missing_views(report),
            side.heat_scale: gr.update(value="global", visible=shown["heat_scale"]),
            side.spectrum_layer: gr.update(choices=spectrum_choices(report), value=layer,
                                           info=module_info(report, layer), visible=shown["spectrum_layer"]),
            side.report: report}


def side_figures(reports: list[AdapterReport | None], scales: list[str], layers: list[str | None]) -> list:
    """Both columns' figures, lined up: equal heights, and shared ranges for the histograms and norm charts.

    A column without a report shows nothing; a section one adapter lacks shows
    a placeholder of the same height that says why, so the sections stay aligned.
    """
    shown = [r for r in reports if r is not None]
    height = max([IF.heatmap_height(r) for r in shown], default=300)
    limit = IF.angle_limit(shown)
    spectra = IF.spectrum_figures(reports, layers)  # shared y range and top margin when both are drawn
    figures = []
    for report, scale, spectrum in zip(reports, scales, spectra):
        if report is None:
            figures.append(None)
            continue
        figures.append({
            "heatmap": IF.angle_heatmap(report, scale=scale or "global", height=height),
            "histogram": IF.angle_histogram(report, saturation_fraction=SATURATION_FRACTION, limit=limit,
                                            shared=sum(bool(r.angles) for r in shown) == 2),
            "norms": IF.norm_change_figure(report),
            "spectrum": spectrum,
        })
    complete = [f for f in figures if f is not None]
    if len(complete) == 2:
        for key in ("histogram", "norms"):
            IF.share_axes(*(f[key] for f in complete))
        for key in ("heatmap", "histogram", "norms"):  # plot areas level despite titles' lengths
            share_top_margin([f[key] for f in complete])
    updates = []
    for figs in figures:
        for key in ("heatmap", "histogram", "norms", "spectrum"):
            updates.append(gr.update(value=None, visible=False) if figs is None else
                           gr.update(value=figs[key], visible=True))
    return updates


def _wire(side: _Side, base: gr.Radio, max_mb: float, sides: list[_Side]) -> None:
    def inspect(files, base_choice) -> dict:
        if not files:
            return _cleared(side, None)
        try:
            return _filled(side, run_inspection(files, base_choice, max_mb))
        except (UploadError, InspectionError) as err:
            return _cleared(side, str(err))
        except Exception as err:  # noqa: BLE001 - a file we did not foresee must not take the app down
            return _cleared(side, f"unexpected problem reading the adapter ({type(err).__name__}: {err})")

    def draw(report_a, report_b, scale_a, scale_b, layer_a, layer_b) -> list:
        return side_figures([report_a, report_b], [scale_a, scale_b], [layer_a, layer_b])

    draw_inputs = [x for pair in zip(*[(s.report, s.heat_scale, s.spectrum_layer) for s in sides]) for x in pair]
    draw_outputs = [fig for s in sides for fig in s.figures]

    index = sides.index(side)

    def pair_layers(report_a, report_b, layer_a, layer_b) -> list:
        """This column was just loaded: both spectra open on the same layer where both adapters have it."""
        reports, layers = [report_a, report_b], [layer_a, layer_b]
        other = 1 - index
        keep = (other, layers[other]) if layers[other] else None
        chosen = IF.paired_spectrum_layers(reports, keep)
        return [gr.skip() if report is None or not report.spectra else
                gr.update(value=layer, info=module_info(report, layer)) for report, layer in zip(reports, chosen)]

    def spectra(report_a, report_b, layer_a, layer_b) -> list:
        """One column's layer changed: both spectra again, so that they keep one y range."""
        reports, layers = [report_a, report_b], [layer_a, layer_b]
        figures = IF.spectrum_figures(reports, layers)
        return [gr.skip() if f is None else f for f in figures] + [
            gr.update(info=module_info(reports[index], layers[index]))]

    layer_inputs = [s.report for s in sides] + [s.spectrum_layer for s in sides]

    # one inspection at a time per pool: loading the base and SVDs take a few seconds of CPU;
    # then both columns are drawn again, so that their axes stay shared
    for trigger in (side.upload.change, base.change):
        trigger(inspect, [side.upload, base], side.outputs, concurrency_limit=2, concurrency_id="inspect",
                api_visibility="private").then(
            pair_layers, layer_inputs, [s.spectrum_layer for s in sides], show_progress="hidden",
            api_visibility="private").then(draw, draw_inputs, draw_outputs, show_progress="hidden",
                                           api_visibility="private")
    side.heat_scale.input(draw, draw_inputs, draw_outputs, show_progress="hidden", api_visibility="private")
    side.spectrum_layer.input(spectra, layer_inputs, [s.spectrum for s in sides] + [side.spectrum_layer],
                              show_progress="hidden", api_visibility="private")


def build_inspect_tab(ctx: AppContext) -> None:
    """Base-model choice on top; two columns (A, B) with an upload and the full report each."""
    max_mb = float(ctx.settings.max_upload_mb)
    gr.Markdown(
        "## Inspect an adapter\nUpload a saved adapter, ours (GOFT / qGOFT) or a PEFT LoRA, OFT or "
        f"BOFT one, as a **.zip of its folder** or its two files **{CONFIG_NAME}** and "
        f"**{WEIGHTS_NAME}** (up to {max_mb:g} MB; only JSON and safetensors are read, never "
        "pickle). Use column B to compare a second adapter, e.g. GOFT against LoRA on the same base.")
    base = gr.Radio(BASE_CHOICES, value="none", label="base model to compare with",
                    info="With the base: per-neuron norm changes, energy drift and singular values "
                         "of W and W′ (takes a few seconds).", elem_id="inspect-base")
    side_a, side_b = _Side("A", ""), _Side("B", "-b")
    sides = [side_a, side_b]
    # one row per section, A beside B: each section starts at the same height in both columns
    with gr.Row(equal_height=False, elem_id="inspect-uploads"):
        for side in sides:
            with gr.Column(min_width=420):
                side.header()
    for key in SECTIONS:
        with gr.Row(equal_height=False, elem_id=f"inspect-row-{key}"):
            for side in sides:
                with gr.Column(min_width=420):
                    side.section(key)
    with gr.Accordion("What the columns mean", open=False):
        gr.Markdown("\n".join(f"- **{k}**: {v}" for k, v in COLUMN_NOTES.items())
                    + "\n- **health**: the number of health flags of the layer (\"not checked\" when no check "
                      "applies to the adapter). Each kind of adapter gets its own checks; the flags panel of "
                      "each column lists the ones that ran.")
    for side in sides:
        _wire(side, base, max_mb, sides)
