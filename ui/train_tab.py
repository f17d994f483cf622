"""The Train tab: settings, transport (train / pause / step / reset / new seed), live views, export, share.

Layout first, then the wiring, Gradio-demo style. The panels are built in
``ui.train.panels``, their events in ``ui.train.events``; what the buttons do
lives in ``ui.train`` (one run per visitor, kept in the registry keyed by
Gradio's session hash), what the charts show in ``train_views``, the downloads
in ``exports`` and the link schema in ``share``.
"""
from __future__ import annotations

import gradio as gr

from ui.context import AppContext
from ui.train import events, panels


def build_train_tab(ctx: AppContext) -> None:
    """Create the Train tab's components and events inside the current Gradio context."""
    registry, max_steps = ctx.runs, ctx.settings.max_steps

    # -- layout ------------------------------------------------------------------------------
    with gr.Row(equal_height=False):
        settings = panels.settings_panel(registry, max_steps)
        with gr.Column(scale=3, min_width=600):
            transport = panels.transport_panel()
            views = panels.view_panel()
            export = panels.export_panel()
            sharing = panels.share_panel()

    # -- events ------------------------------------------------------------------------------
    events.wire_transport(registry, settings, transport, views)
    events.wire_linked_views(registry, views)
    events.wire_settings(registry, settings, transport)
    events.wire_export(registry, export)
    events.wire_share(registry, max_steps, settings, sharing)
    if ctx.demo is not None:
        events.wire_page_load(ctx.demo, ctx.tabs, registry, max_steps, settings, transport, views, export,
                              sharing)
