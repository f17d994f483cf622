"""The Train tab's events: small event functions and the wiring of each panel.

Every ``wire_*`` function is called once inside the tab's Gradio context, after the
layout exists. The event functions only translate: page values in, a handler of
``ui.train`` called, view dicts (keyed by element id) turned into component
updates. API names (``train``, ``pause``, ``step``, ``reset``, ``new_seed``,
``export``, ``share_link``) are part of the app's HTTP API: keep them.
"""
from __future__ import annotations

from typing import Any, Optional

import gradio as gr

from qgoft_core.explore.registry import GIVENS_METHODS, METHOD_SPECS, method_spec
from qgoft_core.explore.training import TrainingConfigError
from qgoft_core.viz import figures as F

from ui import share
from ui import train_views as V
from ui.runs import RunRegistry
from ui.train import earlier as E
from ui.train import handlers as H
from ui.train import teacher
from ui.train.controls import UPLOADED, Controls
from ui.train.panels import BUILTIN_TASK_CHOICES, ExportPanel, SettingsPanel, SharePanel, TransportPanel, ViewPanel
from ui.train.session import apply_live_settings, live_settings_apply
from ui.train.stream import train_stream

# Turns the query string the server returns into a full link on the page's own address.
LINK_JS = "(q) => (q && q.startsWith('?')) ? window.location.origin + window.location.pathname + q : q"
QUICK = dict(show_progress="minimal", concurrency_limit=None)  # one-shot actions (plus the status spinner)
VIEW_EVENT = dict(show_progress="hidden", concurrency_limit=8, concurrency_id="views",
                  api_visibility="undocumented")
SETTING_EVENT = dict(show_progress="hidden", api_visibility="undocumented")
PAUSE_SETTLES = 300.0  # s: the new-run notice after Pause waits at most this long for the last step


def view_updates(views: ViewPanel, values: dict[str, Any]) -> dict:
    """Component updates for a view dict; an empty dict (a keep-alive tick) changes nothing."""
    if not values:
        return {views[V.STATUS]: gr.skip()}
    return {views[key]: value for key, value in values.items()}


# -- transport -------------------------------------------------------------------------------------
def wire_transport(registry: RunRegistry, settings: SettingsPanel, transport: TransportPanel,
                   views: ViewPanel) -> None:
    """Train (streamed), Pause, Step +1, Reset and New seed; all but Step cancel a running Train.

    The new-run notice (what Train would do after a change of settings) goes when Train starts,
    and is said again after each action, from the settings the page shows then."""
    def problem(exc: Exception) -> dict:
        return view_updates(views, {V.STATUS: f"⚠️ {exc}"})

    def train(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed, request: gr.Request):
        hide_notice = {transport.new_run: gr.Markdown(visible=False)}  # Train was pressed: it is not news
        try:
            chosen = Controls.from_inputs(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed)
        except TrainingConfigError as exc:
            yield {**problem(exc), **hide_notice}
            return
        for values in train_stream(registry, request.session_hash, chosen):
            yield {**view_updates(views, values), **hide_notice}
            hide_notice = {}

    def pause(request: gr.Request):
        return view_updates(views, H.pause(registry, request.session_hash))

    def step(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed, request: gr.Request):
        try:
            chosen = Controls.from_inputs(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed)
        except TrainingConfigError as exc:
            return problem(exc)
        return view_updates(views, H.step_once(registry, request.session_hash, chosen))

    def reset(request: gr.Request):
        return view_updates(views, H.reset(registry, request.session_hash))

    def next_seed(seed_value, request: gr.Request):
        value, values = H.new_seed(registry, request.session_hash, seed_value)
        return {settings.seed: value, **view_updates(views, values)}

    def refresh_notice(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed,
                       request: gr.Request):
        return new_run_notice_update(registry, request.session_hash,
                                     (model, task, method, scaling, layers, lam, lr, batch_size, steps, seed))

    def notice_after_pause(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed,
                           request: gr.Request):
        """Pause returns once the step in progress is done or after 30 s, whichever comes first;
        on a slow server the run may still be finishing that step: say what Train does after it."""
        visitor = registry.peek(request.session_hash)
        if visitor is not None:
            registry.wait_until_idle(visitor, timeout=PAUSE_SETTLES)
        return refresh_notice(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed, request)

    controls, outputs = settings.controls, views.outputs
    quick = dict(QUICK, show_progress_on=[views[V.STATUS]])
    notice = dict(show_progress="hidden", concurrency_limit=None, api_visibility="private")
    train_event = transport.train.click(train, controls, [*outputs, transport.new_run], api_name="train",
                                        show_progress="hidden", concurrency_limit=None, trigger_mode="once")
    train_event.then(refresh_notice, controls, [transport.new_run], **notice)
    transport.pause.click(pause, None, outputs, cancels=[train_event], api_name="pause", **quick) \
        .then(notice_after_pause, controls, [transport.new_run], **notice)
    transport.step.click(step, controls, outputs, api_name="step", trigger_mode="once", **quick) \
        .then(refresh_notice, controls, [transport.new_run], **notice)
    transport.reset.click(reset, None, outputs, cancels=[train_event], api_name="reset", **quick) \
        .then(refresh_notice, controls, [transport.new_run], **notice)
    transport.new_seed.click(next_seed, [settings.seed], [settings.seed, *outputs], cancels=[train_event],
                             api_name="new_seed", **quick) \
        .then(refresh_notice, controls, [transport.new_run], **notice)


def new_run_notice_update(registry: RunRegistry, session: Optional[str], values: tuple) -> Any:
    """The new-run notice for the settings the page shows (unchanged while a number is half-typed)."""
    try:
        chosen = Controls.from_inputs(*values)
    except TrainingConfigError:
        return gr.skip()
    text = H.new_run_notice(registry, session, chosen)
    return gr.Markdown(value=text, visible=bool(text))


# -- linked views ------------------------------------------------------------------------------------
def wire_linked_views(registry: RunRegistry, views: ViewPanel) -> None:
    """Layer (dropdown or table row), heatmap scale and timeline redraw the snapshot views."""
    def redraw(session: str) -> dict:
        visitor = registry.visitor(session)
        return view_updates(views, V.snapshot_views(visitor.run, visitor.view, E.shelf(visitor).curves()))

    def forget(request: gr.Request):
        return view_updates(views, H.forget_earlier(registry, request.session_hash))

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

    outputs = views.snapshot_outputs
    views[V.LAYER_SELECT].input(pick_layer, [views[V.LAYER_SELECT]], outputs, **VIEW_EVENT)
    views[V.TABLE].select(pick_row, None, outputs, **VIEW_EVENT)
    views.scale.input(pick_scale, [views.scale], outputs, **VIEW_EVENT)
    views[V.TIMELINE].release(scrub, [views[V.TIMELINE]], outputs, **VIEW_EVENT)
    views[V.FORGET].click(forget, None, views.comparison_outputs, **VIEW_EVENT)


# -- settings that follow each other, live settings, the data upload -----------------------------------
def method_changed(value, lr_fixed: bool = False):
    """A method brings its usual learning rate (not where a teacher's link fixed it); scaling and λ
    apply only where the method has them."""
    rotation = value in METHOD_SPECS and method_spec(value).givens
    lr = gr.Number() if lr_fixed else gr.Number(value=METHOD_SPECS.get(value, METHOD_SPECS["qgoft"]).default_lr)
    return lr, gr.Radio(interactive=rotation), gr.Number(interactive=value == "qgoft")


def wire_settings(registry: RunRegistry, settings: SettingsPanel, transport: TransportPanel) -> None:
    """Settings that follow each other, the live ones (lr, λ), the new-run notice, the data upload."""
    def changed_method(value, request: gr.Request):
        visitor = registry.peek(request.session_hash)
        return method_changed(value, lr_fixed=visitor is not None and "lr" in visitor.hidden)

    def live_setting(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed,
                     request: gr.Request):
        """Learning rate and λ act on the visitor's run at once, even while it trains, as long as
        the page's settings are that run's (after another method is chosen they are the next run's)."""
        visitor = registry.peek(request.session_hash)
        if visitor is None or visitor.run is None:
            return
        try:
            chosen = Controls.from_inputs(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed)
        except TrainingConfigError:
            return  # half-typed: the run keeps what it had
        if live_settings_apply(visitor, chosen):
            apply_live_settings(visitor.run, lr, lam)

    def notice(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed, request: gr.Request):
        return new_run_notice_update(registry, request.session_hash,
                                     (model, task, method, scaling, layers, lam, lr, batch_size, steps, seed))

    def uploaded(path, request: gr.Request):
        if not path:
            return gr.Dropdown(), ""
        loaded, text = H.upload_data(registry, request.session_hash, path)
        if not loaded:
            return gr.Dropdown(), text
        label = registry.visitor(request.session_hash).uploaded_label
        return gr.Dropdown(choices=BUILTIN_TASK_CHOICES + [(label, UPLOADED)], value=UPLOADED), text

    settings.method.input(changed_method, [settings.method], [settings.lr, settings.scaling, settings.lam],
                          **SETTING_EVENT)
    for box in (settings.lr, settings.lam):
        box.change(live_setting, settings.controls, None, concurrency_limit=None, **SETTING_EVENT)
    # A setting that makes a new run says at once what Train will do (and what becomes of the current run).
    for control in (settings.model, settings.task, settings.method, settings.scaling, settings.layers,
                    settings.batch_size, settings.seed):
        control.input(notice, settings.controls, [transport.new_run], concurrency_limit=None, **SETTING_EVENT)
    settings.upload.upload(uploaded, [settings.upload], [settings.task, settings.upload_status],
                           show_progress="minimal", api_visibility="undocumented")


# -- export ------------------------------------------------------------------------------------------
def wire_export(registry: RunRegistry, panel: ExportPanel) -> None:
    def export(request: gr.Request):
        text, done = H.export(registry, request.session_hash)
        if done is None:
            return [text, *[gr.DownloadButton(visible=False)] * 5, gr.Code(visible=False)]
        return [text,
                gr.DownloadButton(value=str(done.adapter_zip), visible=True),
                gr.DownloadButton(value=str(done.metrics_csv), visible=True),
                gr.DownloadButton(value=str(done.metrics_json), visible=True),
                gr.DownloadButton(value=str(done.report_html), visible=True),
                gr.DownloadButton(value=str(done.peft_oft_zip) if done.peft_oft_zip else None,
                                  visible=done.peft_oft_zip is not None),
                gr.Code(value=done.snippet, visible=True)]

    panel.button.click(export, None, panel.outputs, api_name="export", show_progress="minimal",
                       concurrency_limit=2)


# -- share links, teacher mode, the visitor's arrival and departure -----------------------------------
def wire_share(registry: RunRegistry, max_steps: int, settings: SettingsPanel, panel: SharePanel) -> None:
    def make_link(model, task, method, scaling, layers, lam, lr, batch_size, steps, seed, hide,
                  request: gr.Request):
        view = registry.visitor(request.session_hash).view
        values = {"model": model, "task": task if task in share.TASKS else None, "method": method,
                  "scaling": scaling, "layers": layers, "lam": lam, "lr": lr, "bs": batch_size, "steps": steps,
                  "seed": seed, "layer": view.layer or "", "scale": view.scale}
        return share.build_query(values, hide, max_steps)

    panel.button.click(make_link, [*settings.controls, panel.hide_select], [panel.link], api_name="share_link",
                       show_progress="hidden").then(None, [panel.link], [panel.link], js=LINK_JS)


def wire_page_load(demo: Any, tabs: Optional[Any], registry: RunRegistry, max_steps: int,
                   settings: SettingsPanel, transport: TransportPanel, views: ViewPanel, export: ExportPanel,
                   sharing: SharePanel) -> None:
    """Opening the page applies a shared link (settings, hidden controls, tab); closing it frees the run.

    Teacher mode (``ui.train.teacher``): the hidden controls keep the link's values, the page says
    which settings are fixed (read-only), and hints that need a hidden control go with it."""
    s = settings
    hideable = {"model": [s.model], "task": [s.task], "upload": [s.upload_group], "method": [s.method],
                "scaling": [s.scaling], "layers": [s.layers], "lam": [s.lam], "lr": [s.lr], "bs": [s.batch_size],
                "steps": [s.steps], "seed": [s.seed], "export": [export.box], "share": [sharing.box]}

    def open_link(request: gr.Request):
        link = share.parse_link(dict(request.query_params), max_steps, registry.allowed_models())
        values = link.values
        hidden = teacher.derived_hidden(link.hidden, values["method"])  # with what the fixed method leaves idle
        visitor = registry.visitor(request.session_hash)
        visitor.hidden = frozenset(hidden)
        visitor.view.layer = values["layer"] or None
        visitor.view.scale = values["scale"]
        model_value = values["model"]
        fixed = teacher.fixed_settings_markdown(values, hidden)
        out = {
            s.fixed: gr.update(value=fixed, visible=bool(fixed)),
            s.model: gr.update(value=model_value,
                               choices=s.choices if any(v == model_value for _, v in s.choices)
                               else s.choices + [(model_value, model_value)]),
            s.task: gr.update(value=values["task"]), s.method: gr.update(value=values["method"]),
            s.scaling: gr.update(value=values["scaling"], interactive=values["method"] in GIVENS_METHODS),
            s.layers: gr.update(value=values["layers"]),
            s.lam: gr.update(value=values["lam"], interactive=values["method"] == "qgoft"),
            s.lr: gr.update(value=values["lr"], info=teacher.lr_info(hidden)),
            s.batch_size: gr.update(value=values["bs"]),
            s.steps: gr.update(value=values["steps"]), s.seed: gr.update(value=values["seed"]),
            views.scale: gr.update(value=values["scale"]),
            sharing.hide_select: gr.update(value=sorted(link.hidden)),
            transport.link_notice: gr.update(value=link.notice_markdown, visible=bool(link.notices)),
            transport.new_seed: gr.update(visible=teacher.shows_new_seed(hidden)),
        }
        for key, note in views.notes.items():
            out[note] = gr.update(value=teacher.chart_notes(key, hidden))
        for key, components in hideable.items():
            for component in components:
                if key in hidden:  # keeps the value set above: a hidden control still holds the link's value
                    out.setdefault(component, gr.update())["visible"] = False
        if tabs is not None and "tab" in link.given:
            out[tabs] = gr.Tabs(selected=values["tab"])
        return out

    def leave(request: gr.Request) -> None:
        registry.release(request.session_hash)  # the tab closed: stop the run, free its memory

    outputs = [*s.controls, s.fixed, views.scale, sharing.hide_select, transport.link_notice, transport.new_seed,
               s.upload_group, export.box, sharing.box, *views.notes.values()]
    if tabs is not None:
        outputs.append(tabs)
    demo.load(open_link, None, outputs, show_progress="hidden", api_visibility="private")
    demo.unload(leave)
    if tabs is not None:  # while a busy server trains your run in turns: watch a finished one
        transport.lesson.click(lambda: gr.Tabs(selected="lessons"), None, tabs, api_visibility="private",
                               show_progress="hidden", queue=False)
