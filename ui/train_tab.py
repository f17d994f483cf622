"""The Train tab: settings, transport (train / pause / step / reset / new seed), live views, export, share.

Layout and wiring only. What the buttons do lives in ``train_session`` (one
run per visitor, kept in the registry keyed by Gradio's session hash), what
the charts show in ``train_views``, the downloads in ``exports`` and the link
schema in ``share``.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from qgoft_core.viz import figures as F
from demos.learn_texts import CHART_NOTES
from qgoft_core.explore.registry import GIVENS_METHODS, METHOD_SPECS, method_spec
from qgoft_core.explore.models import DEFAULT_MODEL_ID
from qgoft_core.explore.training import TrainingConfigError
from qgoft_core.explore.data.user_files import DataFileError, load_text_file_with_report

from ui import exports, share
from ui import train_session as S
from ui import train_views as V
from ui.context import AppContext
from ui.runs import RunRegistry

# Hub models offered besides the default where any model may be loaded (they need a network).
MODEL_SUGGESTIONS = ("prajjwal1/bert-tiny", "google/bert_uncased_L-2_H-128_A-2", "distilbert-base-uncased")
BUILTIN_TASK_CHOICES = [("Sentiment: film reviews, positive / negative (built-in)", "sentiment"),
                        ("Topic: news headlines, 4 topics (built-in)", "topic")]
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
# Turns the query string the server returns into a full link on the page's own address.
LINK_JS = "(q) => (q && q.startsWith('?')) ? window.location.origin + window.location.pathname + q : q"


def model_choices(registry: RunRegistry) -> tuple[list[tuple[str, str]], bool]:
    """(choices, whether free text is allowed): the default first, then the allow-list or suggestions."""
    default = [("all-MiniLM-L6-v2 (offline default, 22.7M parameters)", DEFAULT_MODEL_ID)]
    allowed = registry.allowed_models()
    if allowed is not None:
        return default + [(m, m) for m in allowed], False
    return default + [(f"{m} (needs a network)", m) for m in MODEL_SUGGESTIONS], True


def notes_markdown(key: str) -> str:
    note = CHART_NOTES.get(key)
    if not note:
        return ""
    return (f"**What you see.** {note['see']}\n\n**What to notice.** {note['notice']}\n\n"
            f"**Try this.** {note['try']}")


def _chart(key: str) -> gr.Plot:
    """A chart with its explanation beside it."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=420):
            plot = gr.Plot(label=CHART_TITLES[key], elem_id=key)
        with gr.Column(scale=1, min_width=220, elem_classes=["chart-notes"]):
            gr.Markdown(notes_markdown(key), elem_id=f"{key}-notes")
    return plot


def build_train_tab(ctx: AppContext) -> None:
    """Create the Train tab's components and events inside the current Gradio context."""
    registry, settings = ctx.runs, ctx.settings
    choices, free_text = model_choices(registry)

    with gr.Row(equal_height=False):
        # -- settings ---------------------------------------------------------------------
        with gr.Column(scale=1, min_width=300, elem_id="train-controls"):
            gr.Markdown("### Settings")
            model = gr.Dropdown(choices=choices, value=DEFAULT_MODEL_ID, allow_custom_value=free_text,
                                label="Model", elem_id="model",
                                info="The frozen pretrained model. The default ships with the app and works "
                                     "offline" + ("; or type a Hugging Face id." if free_text else "."))
            task = gr.Dropdown(choices=BUILTIN_TASK_CHOICES, value="sentiment", label="Task", elem_id="task",
                               info="What the classifier on top of the model learns: a built-in task or your file.")
            with gr.Group(elem_id="upload-group") as upload_group:
                upload = gr.File(label="Your data: CSV, TSV or JSON Lines with a text and a label column",
                                 file_types=[".csv", ".tsv", ".jsonl", ".txt"], type="filepath", height=130,
                                 elem_id="upload")
                upload_status = gr.Markdown(elem_id="upload-status")
            method = gr.Dropdown(choices=[(s.label, m) for m, s in METHOD_SPECS.items()], value="qgoft",
                                 label="Method", elem_id="method",
                                 info="GOFT: exact Givens rotations. qGOFT: quasi-Givens blocks kept near-"
                                      "orthogonal by a penalty. The rest are baselines to compare.")
            scaling = gr.Radio(choices=SCALING_CHOICES, value="none", label="Scaling", elem_id="scaling",
                               info="GOFT / qGOFT only: learned scales on top of the rotation.")
            layers = gr.Radio(choices=LAYER_CHOICES, value="all", label="Target layers", elem_id="layers",
                              info="Which linear layers of every block get an adapter.")
            lam = gr.Number(value=0.01, minimum=0, maximum=10, step=0.01, label="λ (orthogonality penalty)",
                            elem_id="lam",
                            info="qGOFT only: weight of λ·Σ⟨α,β⟩², which keeps the blocks near-orthogonal; "
                                 "acts at once, even while training.")
            lr = gr.Number(value=METHOD_SPECS["qgoft"].default_lr, minimum=1e-6, maximum=1.0, step=0.0005, label="Learning rate",
                           elem_id="lr", info="AdamW step size (warm-up over the first 5 steps); acts at once, "
                                              "even while training. Changing the method sets its usual value.")
            batch_size = gr.Slider(1, 128, value=16, step=1, label="Batch size", elem_id="bs",
                                   info="Training sentences per optimiser step.")
            steps = gr.Number(value=min(60, settings.max_steps), minimum=1, maximum=settings.max_steps,
                              precision=0, label="Steps", elem_id="steps",
                              info=f"Optimiser steps to train to (this server allows up to {settings.max_steps}).")
            seed = gr.Number(value=0, minimum=0, precision=0, label="Seed", elem_id="seed",
                             info="Head initialisation and data order. Reset keeps it; New seed changes it.")

        # -- transport, status and the live views -----------------------------------------
        with gr.Column(scale=3, min_width=600):
            link_notice = gr.Markdown(visible=False, elem_id="link-notice")
            with gr.Row(elem_id="transport"):
                train_btn = gr.Button("▶ Train", variant="primary", elem_id="train-btn")
                pause_btn = gr.Button("Pause", elem_id="pause-btn")
                step_btn = gr.Button("Step +1", elem_id="step-btn")
                reset_btn = gr.Button("↺ Reset", elem_id="reset-btn")
                seed_btn = gr.Button("New seed", elem_id="new-seed-btn")
            status = gr.Markdown(V.status_markdown(None, "ready", "Press **Train** (or **Step**) to start."),
                                 elem_id="status")
            info = gr.JSON(visible=False, elem_id="run-info")
            loss_plot = _chart(V.LOSS_PLOT)

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
            heatmap = _chart(V.HEATMAP)
            hist = _chart(V.HIST)
            norm = _chart(V.NORM)
            orth = _chart(V.ORTH)
            energy = _chart(V.ENERGY)
            gr.Markdown("### All layers at the step shown")
            table = gr.Dataframe(headers=F.TABLE_COLUMNS, value=[], interactive=False, elem_id="layer-table",
                                 max_height=420, label="Click a row to select that layer")

            with gr.Accordion("Export: adapter, metrics, report, code", open=False, elem_id="export") as export_box:
                export_btn = gr.Button("Prepare downloads of the current run", elem_id="export-btn")
                export_status = gr.Markdown(elem_id="export-status")
                with gr.Row():
                    dl_adapter = gr.DownloadButton("Adapter (.zip)", visible=False, elem_id="download-adapter")
                    dl_csv = gr.DownloadButton("Metrics (.csv)", visible=False, elem_id="download-csv")
                    dl_json = gr.DownloadButton("Metrics (.json)", visible=False, elem_id="download-json")
                    dl_report = gr.DownloadButton("Report (.html)", visible=False, elem_id="download-report")
                    dl_peft = gr.DownloadButton("PEFT OFT adapter (.zip)", visible=False, elem_id="download-peft")
                snippet = gr.Code(language="python", label="Load the adapter in Python", visible=False,
                                  elem_id="load-snippet")

            with gr.Accordion("Share these settings (and teacher mode)", open=False, elem_id="share") as share_box:
                hide_select = gr.Dropdown(choices=[(label, key) for key, label in HIDEABLE_LABELS.items()],
                                          value=[], multiselect=True, label="Teacher mode: hide these controls",
                                          elem_id="hide-select",
                                          info="Whoever opens the link does not see them (they keep the "
                                               "link's values).")
                share_btn = gr.Button("Make a link to these settings", elem_id="share-btn")
                share_link = gr.Textbox(label="Link", elem_id="share-link", buttons=["copy"], interactive=False)

    controls = [model, task, method, scaling, layers, lam, lr, batch_size, steps, seed]
    views = {V.STATUS: status, V.INFO: info, V.LOSS_PLOT: loss_plot, V.HEATMAP: heatmap, V.HIST: hist,
             V.NORM: norm, V.ORTH: orth, V.ENERGY: energy, V.TABLE: table, V.LAYER_SELECT: layer_select,
             V.TIMELINE: timeline, V.SELECTED: selected}
    view_outputs = list(views.values())
    snapshot_outputs = [views[k] for k in V.SNAPSHOT_KEYS]

    def updates(values: dict[str, Any]) -> dict:
        if not values:  # a keep-alive tick of the training stream: change nothing
            return {status: gr.skip()}
        return {views[key]: value for key, value in values.items()}

    def problem(exc: Exception) -> dict:
        return updates({V.STATUS: f"⚠️ {exc}"})

    # -- transport --------------------------------------------------------------------------
    def train(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed, request: gr.Request):
        try:
            chosen = S.Controls.from_inputs(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed)
        except TrainingConfigError as exc:
            yield problem(exc)
            return
        for values in S.train_stream(registry, request.session_hash, chosen):
            yield updates(values)

    def pause(request: gr.Request):
        return updates(S.pause(registry, request.session_hash))

    def step(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed, request: gr.Request):
        try:
            chosen = S.Controls.from_inputs(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed)
        except TrainingConfigError as exc:
            return problem(exc)
        return updates(S.step_once(registry, request.session_hash, chosen))

    def reset(request: gr.Request):
        return updates(S.reset(registry, request.session_hash))

    def next_seed(seed_value, request: gr.Request):
        value, values = S.new_seed(registry, request.session_hash, seed_value)
        return {seed: value, **updates(values)}

    train_event = train_btn.click(train, controls, view_outputs, api_name="train", show_progress="hidden",
                                  concurrency_limit=None, trigger_mode="once")
    quick = dict(show_progress="minimal", show_progress_on=[status], concurrency_limit=None)
    pause_btn.click(pause, None, view_outputs, cancels=[train_event], api_name="pause", **quick)
    step_btn.click(step, controls, view_outputs, api_name="step", trigger_mode="once", **quick)
    reset_btn.click(reset, None, view_outputs, cancels=[train_event], api_name="reset", **quick)
    seed_btn.click(next_seed, [seed], [seed, *view_outputs], cancels=[train_event], api_name="new_seed", **quick)

    # -- linked views ---------------------------------------------------------------------------
    def redraw(session: str) -> dict:
        visitor = registry.visitor(session)
        return updates(V.snapshot_views(visitor.run, visitor.view))

    def pick_layer(name, request: gr.Request):
        registry.visitor(request.session_hash).view.layer = name or None
        return redraw(request.session_hash)

    def pick_row(evt: gr.SelectData, request: gr.Request):
        row = evt.row_value or []
        module = F.TABLE_COLUMNS.index("module")
        if len(row) > module and row[module]:
            registry.visitor(request.session_hash).view.layer = str(row[module])
        return redraw(request.session_hash)

    def pick_scale(value, request: gr.Request):
        registry.visitor(request.session_hash).view.scale = value if value in share.HEATMAP_SCALES else "global"
        return redraw(request.session_hash)

    def scrub(step_value, request: gr.Request):
        visitor = registry.visitor(request.session_hash)
        snapshots = visitor.run.history.snapshots if visitor.run is not None else []
        latest = snapshots[-1]["step"] if snapshots else 0
        try:
            wanted = int(step_value)
        except (TypeError, ValueError):
            wanted = latest
        visitor.view.snapshot_step = None if wanted >= latest else max(0, wanted)
        return redraw(request.session_hash)

    view_event = dict(show_progress="hidden", concurrency_limit=8, concurrency_id="views",
                      api_visibility="undocumented")
    layer_select.input(pick_layer, [layer_select], snapshot_outputs, **view_event)
    table.select(pick_row, None, snapshot_outputs, **view_event)
    scale.input(pick_scale, [scale], snapshot_outputs, **view_event)
    timeline.release(scrub, [timeline], snapshot_outputs, **view_event)

    # -- settings that follow each other ----------------------------------------------------------
    def method_changed(value):
        rotation = value in METHOD_SPECS and method_spec(value).givens
        return (gr.Number(value=METHOD_SPECS.get(value, METHOD_SPECS["qgoft"]).default_lr),
                gr.Radio(interactive=rotation), gr.Number(interactive=value == "qgoft"))

    method.input(method_changed, [method], [lr, scaling, lam], show_progress="hidden",
                 api_visibility="undocumented")

    def live_setting(lr_value, lam_value, request: gr.Request):
        """Learning rate and λ act on the visitor's run at once, even while it trains."""
        visitor = registry.peek(request.session_hash)
        if visitor is not None and visitor.run is not None:
            S.apply_live_settings(visitor.run, lr_value, lam_value)

    for box in (lr, lam):
        box.change(live_setting, [lr, lam], None, show_progress="hidden", api_visibility="undocumented",
                   concurrency_limit=None)

    def uploaded(path, request: gr.Request):
        visitor = registry.visitor(request.session_hash)
        if not path:
            return gr.Dropdown(), ""
        limit = settings.max_upload_mb * 1024 * 1024
        try:
            data, warnings = load_text_file_with_report(path, max_bytes=limit)
        except DataFileError as exc:
            return gr.Dropdown(), f"⚠️ **This file cannot be used.** {exc}\n\nThe previous task is kept."
        except Exception as exc:  # noqa: BLE001 - any other failure must not take the page down
            return gr.Dropdown(), (f"⚠️ **This file cannot be read** ({type(exc).__name__}). "
                                   "The previous task is kept.")
        visitor.uploaded = data
        rows = len(data.train_texts) + len(data.test_texts)
        visitor.uploaded_label = f"Your data: {data.name} ({rows} rows, {data.num_labels} classes)"
        note = "\n".join(f"- {w}" for w in warnings[:10])
        more = f"\n- … and {len(warnings) - 10} more" if len(warnings) > 10 else ""
        text = f"Loaded **{data.name}**: {len(data.train_texts)} training and {len(data.test_texts)} " \
               f"held-out examples, labels {', '.join(data.label_names)}."
        if note:
            text += f"\n\nSkipped or noted:\n{note}{more}"
        return gr.Dropdown(choices=BUILTIN_TASK_CHOICES + [(visitor.uploaded_label, S.UPLOADED)],
                           value=S.UPLOADED), text

    upload.upload(uploaded, [upload], [task, upload_status], show_progress="minimal",
                  api_visibility="undocumented")

    # -- export -------------------------------------------------------------------------------
    def export(request: gr.Request):
        visitor = registry.visitor(request.session_hash)
        run = visitor.run
        hidden = [gr.DownloadButton(visible=False)] * 5 + [gr.Code(visible=False)]
        if run is None or not run.history.evals:
            return ["Nothing to export yet: train or step the run first.", *hidden]
        if visitor.busy:
            return ["Pause the run first, then export (the adapter keeps changing while it trains).", *hidden]
        try:
            visitor.export_dir = exports.new_export_dir(visitor.run_id, visitor.export_dir)
            done = exports.export_run(run, visitor.export_dir)
        except Exception as exc:  # noqa: BLE001 - an export failure is reported, the run is kept
            return [f"⚠️ Export failed: {type(exc).__name__}: {exc}", *hidden]
        text = f"Exported the run at step {run.step_count}. Unzip the adapter and load it with the code below."
        if done.notes:
            text += "\n\n" + "\n".join(f"- {n}" for n in done.notes)
        return [text,
                gr.DownloadButton(value=str(done.adapter_zip), visible=True),
                gr.DownloadButton(value=str(done.metrics_csv), visible=True),
                gr.DownloadButton(value=str(done.metrics_json), visible=True),
                gr.DownloadButton(value=str(done.report_html), visible=True),
                gr.DownloadButton(value=str(done.peft_oft_zip) if done.peft_oft_zip else None,
                                  visible=done.peft_oft_zip is not None),
                gr.Code(value=done.snippet, visible=True)]

    export_btn.click(export, None, [export_status, dl_adapter, dl_csv, dl_json, dl_report, dl_peft, snippet],
                     api_name="export", show_progress="minimal", concurrency_limit=2)

    # -- share links and teacher mode ------------------------------------------------------------------
    def make_link(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed, hide, request: gr.Request):
        view = registry.visitor(request.session_hash).view
        values = {"model": model, "task": task if task in share.TASKS else None, "method": method,
                  "scaling": scaling, "layers": layers, "lam": lam, "lr": lr, "bs": batch_size, "steps": steps,
                  "seed": seed, "layer": view.layer or "", "scale": view.scale}
        return share.build_query(values, hide, settings.max_steps)

    share_btn.click(make_link, [*controls, hide_select], [share_link], api_name="share_link",
                    show_progress="hidden").then(None, [share_link], [share_link], js=LINK_JS)

    hideable = {"model": [model], "task": [task], "upload": [upload_group], "method": [method],
                "scaling": [scaling], "layers": [layers], "lam": [lam], "lr": [lr], "bs": [batch_size],
                "steps": [steps], "seed": [seed], "export": [export_box], "share": [share_box]}
    tabs = getattr(ctx, "tabs", None)

    def open_link(request: gr.Request):
        link = share.parse_link(dict(request.query_params), settings.max_steps, registry.allowed_models())
        values, hidden = link.values, link.hidden
        visitor = registry.visitor(request.session_hash)
        visitor.hidden = frozenset(hidden)
        visitor.view.layer = values["layer"] or None
        visitor.view.scale = values["scale"]
        model_value = values["model"]
        out = {
            model: gr.update(value=model_value,
                             choices=choices if any(v == model_value for _, v in choices)
                             else choices + [(model_value, model_value)]),
            task: gr.update(value=values["task"]), method: gr.update(value=values["method"]),
            scaling: gr.update(value=values["scaling"], interactive=values["method"] in GIVENS_METHODS),
            layers: gr.update(value=values["layers"]),
            lam: gr.update(value=values["lam"], interactive=values["method"] == "qgoft"),
            lr: gr.update(value=values["lr"]), batch_size: gr.update(value=values["bs"]),
            steps: gr.update(value=values["steps"]), seed: gr.update(value=values["seed"]),
            scale: gr.update(value=values["scale"]),
            hide_select: gr.update(value=sorted(hidden)),
            link_notice: gr.update(value=link.notice_markdown, visible=bool(link.notices)),
        }
        for key, components in hideable.items():
            for component in components:
                if key in hidden:  # keeps the value set above: a hidden control still holds the link's value
                    out.setdefault(component, gr.update())["visible"] = False
        if tabs is not None and "tab" in link.given:
            out[tabs] = gr.Tabs(selected=values["tab"])
        return out

    if ctx.demo is not None:
        load_outputs = [*controls, scale, hide_select, link_notice, upload_group, export_box, share_box]
        if tabs is not None:
            load_outputs.append(tabs)
        ctx.demo.load(open_link, None, load_outputs, show_progress="hidden", api_visibility="private")

        def leave(request: gr.Request) -> None:
            registry.release(request.session_hash)  # the tab closed: stop the run, free its memory

        ctx.demo.unload(leave)

