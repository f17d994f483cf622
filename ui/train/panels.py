"""The Train tab's layout: one builder per panel, each returning its components (no events here).

Builders are called inside the tab's Gradio context, in page order; ``ui.train.events``
wires what they return. Element ids are what the browser tests, the Learn tab's tour
and share links address: keep them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from qgoft_core.explore.models import DEFAULT_MODEL_ID
from qgoft_core.explore.registry import METHOD_SPECS
from qgoft_core.viz import figures as F

from ui import train_views as V
from ui.runs import RunRegistry
from ui.train import teacher

# Hub models offered besides the default where any model may be loaded (they need a network).
MODEL_SUGGESTIONS = ("prajjwal1/bert-tiny", "google/bert_uncased_L-2_H-128_A-2", "distilbert-base-uncased")
BUILTIN_TASK_CHOICES = [("Film reviews: positive / negative", "sentiment"),
                        ("News headlines: 4 topics", "topic")]
SCALING_CHOICES = [("none: a pure rotation", "none"), ("output: one scale per neuron", "output"),
                   ("input: one scale per input (GOFT*)", "input")]
LAYER_CHOICES = [("all attention and MLP layers", "all"), ("attention only", "attention"), ("MLP only", "mlp")]
HIDEABLE_LABELS = {"model": "model", "task": "task", "upload": "data upload", "method": "method",
                   "scaling": "scaling", "layers": "target layers", "lam": "λ", "lr": "learning rate",
                   "bs": "batch size", "steps": "steps", "seed": "seed", "export": "export panel",
                   "share": "share panel"}
CHART_TITLES = {V.LOSS_PLOT: "Loss and accuracy", V.HEATMAP: "Rotation angles, all layers",
                V.HIST: "Angle histogram over time (selected layer)", V.NORM: "Norm change (selected layer)",
                V.ORTH: "Orthogonality deviation per layer", V.ENERGY: "Hyperspherical-energy drift per layer"}


def model_choices(registry: RunRegistry) -> tuple[list[tuple[str, str]], bool]:
    """(choices, whether free text is allowed): the default first, then the allow-list or suggestions."""
    default = [("all-MiniLM-L6-v2 (offline, 22.7M)", DEFAULT_MODEL_ID)]
    allowed = registry.allowed_models()
    if allowed is not None:
        return default + [(m, m) for m in allowed], False
    return default + [(m, m) for m in MODEL_SUGGESTIONS], True  # the menu's info says they need a network


def notes_markdown(key: str, hidden: frozenset = frozenset()) -> str:
    """A chart's notes (without a "Try this" that needs a control a teacher's link hid)."""
    return teacher.chart_notes(key, hidden)


def chart(key: str) -> tuple[gr.Plot, gr.Markdown]:
    """A chart with its explanation beside it: (the chart, its notes)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=420):
            plot = gr.Plot(label=CHART_TITLES[key], elem_id=key)
        with gr.Column(scale=1, min_width=220, elem_classes=["chart-notes"]):
            notes = gr.Markdown(notes_markdown(key), elem_id=f"{key}-notes")
    return plot, notes


# -- settings --------------------------------------------------------------------------------------
@dataclass
class SettingsPanel:
    fixed: gr.Markdown  # teacher mode: the settings the link fixed, read-only
    model: gr.Dropdown
    task: gr.Dropdown
    upload_group: gr.Group
    upload: gr.File
    upload_status: gr.Markdown
    method: gr.Dropdown
    scaling: gr.Radio
    layers: gr.Radio
    lam: gr.Number
    lr: gr.Number
    batch_size: gr.Slider
    steps: gr.Number
    seed: gr.Number
    choices: list  # the model dropdown's choices (a link may add its own model)

    @property
    def controls(self) -> list:
        """The run settings, in the order of ``Controls.from_inputs`` (and of the API's /train)."""
        return [self.model, self.task, self.method, self.scaling, self.layers, self.lam, self.lr,
                self.batch_size, self.steps, self.seed]


def settings_panel(registry: RunRegistry, max_steps: int) -> SettingsPanel:
    """The left column: model, task (and the data upload), method and its settings, steps, seed."""
    choices, free_text = model_choices(registry)
    with gr.Column(scale=1, min_width=300, elem_id="train-controls"):
        gr.Markdown("### Settings")
        fixed = gr.Markdown(visible=False, elem_id="teacher-fixed")
        model = gr.Dropdown(choices=choices, value=DEFAULT_MODEL_ID, allow_custom_value=free_text,
                            label="Model", elem_id="model",
                            info="The frozen pretrained model. The default ships with the app and works "
                                 "offline" + ("; the others, or any Hugging Face id you type, need a network."
                                              if free_text else "."))
        task = gr.Dropdown(choices=BUILTIN_TASK_CHOICES, value="sentiment", label="Task", elem_id="task",
                           info="What the classifier on top of the model learns: a built-in task (film "
                                "reviews, news headlines) or your file.")
        with gr.Group() as upload_group:  # no elem_id: Gradio 6 writes a Group's id on two nested divs
            upload = gr.File(label="Your data: CSV, TSV or JSON Lines with a text and a label column",
                             file_types=[".csv", ".tsv", ".jsonl", ".txt"], type="filepath", height=130,
                             elem_id="upload")
            upload_status = gr.Markdown(elem_id="upload-status")
        method = gr.Dropdown(choices=[(s.label, m) for m, s in METHOD_SPECS.items()], value="qgoft",
                             label="Method", elem_id="method",
                             info="GOFT: exact Givens rotations. qGOFT: free 2×2 blocks; a penalty makes each "
                                  "block's two columns perpendicular, their lengths stay free. The rest are "
                                  "baselines to compare.")
        scaling = gr.Radio(choices=SCALING_CHOICES, value="none", label="Scaling", elem_id="scaling",
                           info="GOFT / qGOFT only: learned scales on top of the rotation. Output scales keep the "
                                "energy; input scales (GOFT*) change it and count in the orthogonality deviation.")
        layers = gr.Radio(choices=LAYER_CHOICES, value="all", label="Target layers", elem_id="layers",
                          info="Which linear layers of every block get an adapter.")
        lam = gr.Number(value=0.01, minimum=0, maximum=10, step=0.01, label="λ (qGOFT penalty on ⟨α,β⟩)",
                        elem_id="lam",
                        info="qGOFT only: weight of λ·Σ⟨α,β⟩², which pushes each block's two columns towards "
                             "perpendicular; their lengths stay free, so it keeps neither the operator orthogonal "
                             "nor the energy fixed. Acts at once, even while training.")
        lr = gr.Number(value=METHOD_SPECS["qgoft"].default_lr, minimum=1e-6, maximum=1.0, step=0.0005,
                       label="Learning rate", elem_id="lr", info=teacher.lr_info(()))
        batch_size = gr.Slider(1, 128, value=16, step=1, label="Batch size", elem_id="bs",
                               info="Training sentences per optimiser step.")
        steps = gr.Number(value=min(60, max_steps), minimum=1, maximum=max_steps,
                          precision=0, label="Steps", elem_id="steps",
                          info=f"Optimiser steps to train to (this server allows up to {max_steps}).")
        seed = gr.Number(value=0, minimum=0, precision=0, label="Seed", elem_id="seed",
                         info="Head initialisation and data order. Reset keeps it; New seed changes it.")
    return SettingsPanel(fixed, model, task, upload_group, upload, upload_status, method, scaling, layers, lam, lr,
                         batch_size, steps, seed, choices)


# -- transport -----------------------------------------------------------------------------------
@dataclass
class TransportPanel:
    link_notice: gr.Markdown  # what a shared link changed or could not apply
    new_run: gr.Markdown  # what pressing Train does now that the settings differ from the run's
    train: gr.Button
    pause: gr.Button
    step: gr.Button
    reset: gr.Button
    new_seed: gr.Button
    lesson: gr.Button  # opens the Lessons tab: something to watch while a busy server trains your run


def transport_panel() -> TransportPanel:
    """The shared link's notice and the run buttons: Train, Pause, Step +1, Reset, New seed."""
    link_notice = gr.Markdown(visible=False, elem_id="link-notice")
    new_run = gr.Markdown(visible=False, elem_id="new-run-notice")
    with gr.Row(elem_id="transport"):
        train = gr.Button("▶ Train", variant="primary", elem_id="train-btn")
        pause = gr.Button("Pause", elem_id="pause-btn")
        step = gr.Button("Step +1", elem_id="step-btn")
        reset = gr.Button("Reset", elem_id="reset-btn")
        new_seed = gr.Button("New seed", elem_id="new-seed-btn")
    lesson = gr.Button("Watch a lesson (a finished run, replayed at once) while you wait", size="sm",
                       variant="secondary", elem_id="watch-lesson-btn")
    return TransportPanel(link_notice, new_run, train, pause, step, reset, new_seed, lesson)


# -- status and the live views ---------------------------------------------------------------------
@dataclass
class ViewPanel:
    views: dict[str, Any]  # element id (train_views keys) -> component
    scale: gr.Radio  # the heatmap's colour scale (a view setting, not a view)
    notes: dict[str, gr.Markdown]  # chart element id -> its notes (teacher mode leaves hints out)

    def __getitem__(self, key: str) -> Any:
        return self.views[key]

    @property
    def outputs(self) -> list:
        """Every view, as the transport events update them (the API's /train outputs, in order)."""
        return list(self.views.values())

    @property
    def snapshot_outputs(self) -> list:
        return [self.views[k] for k in V.SNAPSHOT_KEYS]

    @property
    def comparison_outputs(self) -> list:
        """The views that draw the earlier runs (``train_views.comparison_views``)."""
        return [self.views[k] for k in (V.LOSS_PLOT, *V.SNAPSHOT_KEYS, *V.EARLIER_KEYS)]


def view_panel() -> ViewPanel:
    """Status line, loss curves, then the adapter at the step shown: layer, scale, timeline, charts, table."""
    status = gr.Markdown(V.status_markdown(None, "ready", "Press **Train** (or **Step**) to start."),
                         elem_id="status")
    info = gr.JSON(visible=False, elem_id="run-info")
    loss_plot, loss_notes = chart(V.LOSS_PLOT)
    # Earlier runs, kept for comparison once a run is replaced (ui/train/earlier.py); shown once one is.
    earlier = gr.Markdown(visible=False, elem_id=V.EARLIER)
    forget = gr.Button("Forget the earlier runs", size="sm", variant="secondary", visible=False, elem_id=V.FORGET)

    gr.Markdown("### Where the adapter is at")
    with gr.Row():
        layer_select = gr.Dropdown(choices=[], value=None, label="Layer", elem_id="layer-select",
                                   info="Drives the detail views below (or click a row of the table).")
        scale = gr.Radio(choices=[("one scale for all layers", "global"), ("per layer", "layer")],
                         value="global", label="Heatmap colour scale", elem_id="heatmap-scale",
                         info="Per layer makes small rotations of quiet layers visible.")
    timeline = gr.Slider(0, 1, value=0, step=1, label="Timeline: optimizer step shown", elem_id="timeline",
                         info="Drag to any recorded snapshot, during or after training; the right end "
                              "follows the live run.")
    selected = gr.Markdown(V.EMPTY_MESSAGE, elem_id="selected-layer")
    drawn = {key: chart(key) for key in (V.HEATMAP, V.HIST, V.NORM, V.ORTH, V.ENERGY)}
    charts = {key: plot for key, (plot, _) in drawn.items()}
    notes = {V.LOSS_PLOT: loss_notes, **{key: note for key, (_, note) in drawn.items()}}
    gr.Markdown("### All layers at the step shown")
    table = gr.Dataframe(headers=F.TABLE_COLUMNS, value=[], interactive=False, elem_id="layer-table",
                         max_height=420, wrap=True, column_widths=F.TABLE_COLUMN_WIDTHS,
                         label="Click a row to select that layer (the full module path is the last column)")
    gr.Markdown(F.table_notes_markdown(), elem_id="layer-table-notes")
    # (the API's /train outputs follow this order: new views go last)
    views = {V.STATUS: status, V.INFO: info, V.LOSS_PLOT: loss_plot, **charts, V.TABLE: table,
             V.LAYER_SELECT: layer_select, V.TIMELINE: timeline, V.SELECTED: selected,
             V.EARLIER: earlier, V.FORGET: forget}
    return ViewPanel(views, scale, notes)


# -- export ----------------------------------------------------------------------------------------
@dataclass
class ExportPanel:
    box: gr.Accordion
    button: gr.Button
    status: gr.Markdown
    adapter: gr.DownloadButton
    csv: gr.DownloadButton
    json: gr.DownloadButton
    report: gr.DownloadButton
    peft: gr.DownloadButton
    snippet: gr.Code

    @property
    def outputs(self) -> list:
        return [self.status, self.adapter, self.csv, self.json, self.report, self.peft, self.snippet]


def export_panel() -> ExportPanel:
    """Downloads of the current run (shown once prepared) and the code that loads the adapter."""
    with gr.Accordion("Export: adapter, metrics, report, code", open=False, elem_id="export") as box:
        button = gr.Button("Prepare downloads of the current run", elem_id="export-btn")
        status = gr.Markdown(elem_id="export-status")
        with gr.Row():
            adapter = gr.DownloadButton("Adapter (.zip)", visible=False, elem_id="download-adapter")
            csv = gr.DownloadButton("Metrics (.csv)", visible=False, elem_id="download-csv")
            json = gr.DownloadButton("Metrics (.json)", visible=False, elem_id="download-json")
            report = gr.DownloadButton("Report (.html)", visible=False, elem_id="download-report")
            peft = gr.DownloadButton("PEFT OFT adapter (.zip)", visible=False, elem_id="download-peft")
        snippet = gr.Code(language="python", label="Load the adapter in Python", visible=False,
                          elem_id="load-snippet")
    return ExportPanel(box, button, status, adapter, csv, json, report, peft, snippet)


# -- share and teacher mode ----------------------------------------------------------------------
@dataclass
class SharePanel:
    box: gr.Accordion
    hide_select: gr.Dropdown
    button: gr.Button
    link: gr.Textbox


def share_panel() -> SharePanel:
    """A link to these settings, with the controls a teacher hides from whoever opens it."""
    with gr.Accordion("Share these settings (and teacher mode)", open=False, elem_id="share") as box:
        hide_select = gr.Dropdown(choices=[(label, key) for key, label in HIDEABLE_LABELS.items()],
                                  value=[], multiselect=True, label="Teacher mode: hide these controls",
                                  elem_id="hide-select",
                                  info="Whoever opens the link does not see them: they keep the "
                                       "link's values, which the page lists as fixed (read-only).")
        button = gr.Button("Make a link to these settings", elem_id="share-btn")
        link = gr.Textbox(label="Link", elem_id="share-link", buttons=["copy"], interactive=False)
    return SharePanel(box, hide_select, button, link)
