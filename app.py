"""qGOFT Explorer, the web app: `python app.py` serves it (host and port from GRADIO_SERVER_NAME /
GRADIO_SERVER_PORT); a Hugging Face Space runs the same file. `demo` is the module-level Blocks.

A thin composition: the settings are read from the environment once (ui/settings.py, README),
each tab is built by its own module under ui/ from one AppContext (settings and the run registry).
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from ui.settings import Settings  # noqa: E402

SETTINGS = Settings.from_env()  # the one read of the environment

from ui import memory  # noqa: E402

# Before any thread allocates: a few malloc arenas for all threads, not one heap per thread (glibc).
memory.cap_malloc_arenas(SETTINGS.malloc_arenas)

import gradio as gr  # noqa: E402

from ui.compare_tab import build_compare_tab  # noqa: E402
from ui.context import AppContext  # noqa: E402
from ui.inspect_tab import build_inspect_tab  # noqa: E402
from ui.lean_blocks import LeanBlocks, skip_absent_imports  # noqa: E402
from ui.learn_tab import build_learn_tab  # noqa: E402
from ui.lessons_tab import build_lessons_tab  # noqa: E402
from ui.playground_tab import build_playground_tab  # noqa: E402
from ui.train_tab import build_train_tab  # noqa: E402

TABS = (
    ("Train", "train", build_train_tab),
    ("Compare", "compare", build_compare_tab),
    ("Inspect", "inspect", build_inspect_tab),
    ("Givens playground", "playground", build_playground_tab),
    ("Lessons", "lessons", build_lessons_tab),
    ("Learn", "learn", build_learn_tab),
)

# Gradio 6.31's theme serves Source Sans Pro at weight 600 from a 5 KB file that holds almost no glyphs, so
# every heading, button and bold word fell back to another font (DejaVu Sans here) beside the regular text.
# The same family's complete bold file takes weight 600's place (declared later, it wins).
CSS = """
@font-face {
    font-family: 'Source Sans Pro';
    src: url('static/fonts/SourceSansPro/SourceSansPro-Bold.woff2') format('woff2');
    font-weight: 600;
    font-style: normal;
}
/* A labelled chart's label sits above the chart, not over its title (charts put their title at the top). */
.block:has(> .js-plotly-plot) > label[data-testid="block-label"].float:not(.sr-only) { position: static; }
.chart-notes { font-size: 0.9em; color: var(--body-text-color-subdued); }
#status { font-size: 1.02em; }
#link-notice { border-left: 4px solid #d97706; padding-left: 0.6em; }
#new-run-notice, #teacher-fixed { border-left: 4px solid #2563eb; padding-left: 0.6em; }
/* Train's runs table (ui/train/earlier.py): the step column ("15/15") stays on one line. */
#runs-compared td:nth-child(3), #runs-compared th:nth-child(3) { white-space: nowrap; }
/* The tour's "Show me" outlines its panel (ui/learn_tab.py) for two seconds. */
[data-tour-mark] { outline: 3px solid #f58518 !important; outline-offset: 2px; }
"""


def build_app(ctx: AppContext | None = None) -> gr.Blocks:
    """The whole app: a header and the six tabs, in this order."""
    ctx = ctx or AppContext()
    skip_absent_imports()  # Gradio probes for them on every event (ui/lean_blocks.py)
    with LeanBlocks(title="qGOFT Explorer") as blocks:
        ctx.demo = blocks
        gr.Markdown("# qGOFT Explorer\nFine-tune a real pretrained model with orthogonal (Givens) rotations "
                    "and watch, live, what the rotations do to it. New here? **Lessons** replay finished runs "
                    "instantly, **Learn** has a guided tour, or just press **Train** below.")
        with gr.Tabs(elem_id="tabs") as tabs:
            ctx.tabs = tabs
            for label, key, build in TABS:
                with gr.Tab(label, id=key, elem_id=f"{key}-tab"):
                    build(ctx)
    blocks.queue()
    return blocks


def launch_kwargs(settings: Settings | None = None) -> dict:
    """What `launch()` needs besides host and port (tests launch with the same)."""
    settings = settings or SETTINGS
    return {
        "css": CSS,
        "max_file_size": f"{settings.max_upload_mb}mb",
        "run_history": False,  # streamed charts are large: keep them out of browser storage
        # Every visitor in the training rotation has a watching generator on one of Gradio's threads:
        # room for all of them and for the short events besides (threads cost address space, not memory).
        "max_threads": max(40, settings.max_active_runs + 24),
        "ssr_mode": False,
        "footer_links": ["api", "gradio"],
    }


def preload_default_model(ctx: AppContext):
    """Load the shared frozen base and warm the first run's caches in the background: the page is
    up at once, and the first press of Train draws its charts within seconds. It runs as a turn of
    the training rotation (the scheduler's threads, never more than the cores); returns the turn."""
    from ui.scheduler import Turn
    from ui.train.session import warm_up

    def load():
        try:
            warm_up(ctx.runs)
        except Exception as exc:  # noqa: BLE001 - the first run reports it properly
            print(f"qGOFT Explorer: could not preload the default model: {exc}")
        return
        yield  # one turn

    return ctx.runs.scheduler.submit(Turn(load(), key="preload"))


def serve_setup(ctx: AppContext) -> None:
    """What a serving process does once: the engine caches' budgets, the idle sweep, the preload."""
    memory.apply_cache_budgets(ctx.settings)
    ctx.runs.start_sweeper()
    if ctx.settings.preload:
        preload_default_model(ctx)


CONTEXT = AppContext(settings=SETTINGS)
demo = build_app(CONTEXT)
serve_setup(CONTEXT)

if __name__ == "__main__":
    demo.launch(**launch_kwargs(SETTINGS))
