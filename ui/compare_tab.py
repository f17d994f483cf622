"""Compare tab: several fine-tuning methods on one task, side by side.

The tab opens on the comparison shipped for the sentiment task
(demos/precomputed/, made by demos/make_precomputed.py), so a CPU server shows
a full table and charts at once. "Load precomputed" shows the shipped
comparison of the chosen task (only the ticked methods); "Run live" trains the
ticked methods one after another with the chosen seed and step budget
(qgoft_core.explore.compare.compare_runs), streaming progress, the table and the small
multiples as each method finishes. Live runs share the server's training slots
with the Train tab and stay within its step and time limits.
"""
from __future__ import annotations

import hashlib
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import gradio as gr
import pandas as pd

from qgoft_core.explore.data.tasks import BUILTIN_TASKS
from qgoft_core.explore import compare as C
from qgoft_core.viz import compare_views as CV
from qgoft_core.explore.models import ModelLoadError
from qgoft_core.explore.registry import METHOD_SPECS
from qgoft_core.explore.training import RunConfig, TrainingConfigError
from demos import comparisons as shipped
from demos import presets
from ui.context import AppContext
from ui.runs import ServerBusy

EXPORT_DIR = Path(tempfile.gettempdir()) / "qgoft-exports" / "compare"  # served by Gradio (temp dir)
# Column widths (px) of the table, in CV.COLUMNS order plus the note: each fits its widest cell on one
# line (about 10 px a character in the table's font; "0.000294 ± 0.0001" broke in two at 155 px). Wider
# than the page: the table scrolls sideways with the method column pinned.
TABLE_WIDTHS = [160, 125, 135, 170, 200, 200, 180, 110, 135, 80, 70, 220]
EXPORT_MAX_AGE = 24 * 3600  # seconds an exported comparison file is kept
DEFAULT_LIVE_STEPS = 30
MAX_LIVE_STEPS = 300  # a comparison runs up to 9 methods: keep one click bounded
PLOT_INTERVAL = 1.5  # seconds between two redraws of the charts while running
WAIT_POLL = 1.0  # seconds between two looks at the waiting line
BAR_KEYS = [name for name, *_ in CV.BAR_METRICS]

INTRO = """## Compare methods: what each one learns, and what each one keeps
Every method trains the same base model (all-MiniLM-L6-v2) on the same task with the same seed (same
head initialisation and data order) and the same number of steps; only the method and its learning
rate differ. Orthogonal methods rotate the pretrained weights instead of adding to them, so they should
keep more of what the model knew: compare **accuracy** with **CKA to base** (how similar the sentence
representations stay) and **skill kept** (the base model's own sentence-similarity skill after tuning).
The tab opens on a precomputed comparison (the mean ± sd of several seeds); **Run live** retrains the
ticked methods here with one seed, one after another, filling the table as each one finishes (BOFT is
several times slower than the others on a CPU)."""


def _shipped_seeds() -> list[int]:
    """Seeds behind the shipped comparison the tab opens on ([] when it cannot be read)."""
    try:
        return list(shipped.load_precomputed(BUILTIN_TASKS[0]).seeds)
    except (OSError, ValueError, KeyError):
        return []


def _which_run(seed: int, seeds: list[int]) -> str:
    """What Train's run (seed `seed`) is to a precomputed row made over `seeds`."""
    if len(seeds) > 1 and seed in seeds:
        return (f"the seed-{seed} run, one of the {len(seeds)} (seeds {', '.join(map(str, seeds))}) "
                "whose mean a precomputed row shows")
    if len(seeds) > 1:
        return (f"a run like the {len(seeds)} (seeds {', '.join(map(str, seeds))}) whose mean a "
                f"precomputed row shows, with another seed ({seed})")
    if seeds and seeds[0] != seed:
        return f"a run like the one a precomputed row comes from (seed {seeds[0]}; Train's is {seed})"
    return "the run a precomputed row comes from"


def defaults_note(seeds: Optional[list[int]] = None) -> str:
    """One sentence: why Compare's numbers for a method differ from Train's and Lessons' (if they do).

    Computed from the settings themselves (COMPARE_METHODS against the method
    registry's usual rates, RunConfig's defaults and the lessons' shared config) and
    the seeds of the shipped comparison (`seeds`, read from the file when None), so
    it stays true when any of them changes: a precomputed row is a mean over seeds,
    and Train's run is one of them.
    """
    seeds = _shipped_seeds() if seeds is None else list(seeds)
    usual = {key: m for key, m in C.COMPARE_METHODS.items() if not m.variant}
    differ = [(m.label, m.lr, METHOD_SPECS[m.method].default_lr) for m in usual.values()
              if not math.isclose(m.lr, METHOD_SPECS[m.method].default_lr)]
    train = RunConfig()
    lessons = presets.COMMON_CONFIG
    same = (train.batch_size == lessons.get("batch_size") and train.steps == lessons.get("steps")
            and train.seed == lessons.get("seed"))
    shared = f"batch {train.batch_size}, {train.steps} steps, seed {train.seed}"
    if not differ:
        return (f"Train and Lessons use the same learning rates as Compare ({shared}), so Train with the "
                f"same settings makes {_which_run(train.seed, seeds)}.")
    ours = ", ".join(f"{label} {lr:g}" for label, lr, _ in differ)
    theirs = ", ".join(f"{label} {lr:g}" for label, _, lr in differ)
    return (f"**Why Train and Lessons give other numbers for the same method:** Compare trains each method "
            f"at the learning rate the quality benchmark picked for it ({ours}), while Train and Lessons start "
            f"from each method's usual rate ({theirs})" + (f", with the same {shared}" if same else "")
            + f"; type a rate from here into Train to make {_which_run(train.seed, seeds)}. A live "
              f"comparison here defaults to {DEFAULT_LIVE_STEPS} steps to stay short.")


# -- views (plain values for the components) -----------------------------------
def table_frame(result: Optional[C.CompareResult]) -> pd.DataFrame:
    headers = [header for _, header in CV.COLUMNS] + ["note"]
    if result is None or not result.rows:
        return pd.DataFrame(columns=headers)
    headers, body = CV.table_rows(result)
    return pd.DataFrame(body, columns=headers)


def column_help_markdown() -> str:
    return "\n".join(f"- **{name}**: {text}" for name, text in CV.COLUMN_HELP.items())


def methods_help_markdown() -> str:
    return "\n".join(f"- **{m.label}** (lr {m.lr:g}): {m.note}" for m in C.COMPARE_METHODS.values())


def views(result: Optional[C.CompareResult]) -> dict[str, Any]:
    """Table, summary, curves and bars of a comparison, keyed like the components."""
    if result is None or not result.rows:
        return {"table": table_frame(None), "summary": "", "kept": None, **{k: None for k in BAR_KEYS}}
    bars = CV.compare_bar_figures(result)
    return {"table": table_frame(result), "summary": CV.summary_markdown(result),
            "kept": CV.kept_figure(result), **{k: bars[k] for k in BAR_KEYS}}


def export_files(result: Optional[C.CompareResult]) -> tuple[Optional[str], Optional[str]]:
    """(csv path, json path) of a comparison; content-addressed, so reloading reuses them."""
    if result is None or not result.rows:
        return None, None
    text = C.result_to_json(result)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    folder = EXPORT_DIR / digest
    folder.mkdir(parents=True, exist_ok=True)
    _forget_old_exports()
    seeds = "seeds" + "-".join(map(str, result.seeds)) if len(result.seeds) > 1 else f"seed{result.seed}"
    stem = f"qgoft-compare-{result.task}-{seeds}-{result.steps}steps"
    csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
    if not json_path.exists():
        csv_path.write_text(C.rows_to_csv(result.rows), encoding="utf-8")
        json_path.write_text(text + "\n", encoding="utf-8")
    return str(csv_path), str(json_path)


def _forget_old_exports() -> None:
    now = time.time()
    for folder in EXPORT_DIR.glob("*"):
        try:
            if now - folder.stat().st_mtime > EXPORT_MAX_AGE:
                for path in folder.iterdir():
                    path.unlink(missing_ok=True)
                folder.rmdir()
        except OSError:
            pass  # another visitor is cleaning it up at the same moment


def load_precomputed_view(task: str, methods: list[str] | None) -> tuple[Optional[C.CompareResult], str]:
    """(the shipped comparison of `task` limited to `methods`, status text)."""
    if task not in BUILTIN_TASKS:
        return None, f"**No precomputed comparison** for {task!r}: choose one of {', '.join(BUILTIN_TASKS)}."
    try:
        full = shipped.load_precomputed(task)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        return None, f"**Cannot show the precomputed comparison:** {exc}"
    chosen = [m for m in (methods or []) if m in C.COMPARE_METHODS]
    result = C.select_methods(full, chosen) if chosen else full
    note = "" if chosen else " (no method ticked: showing all)"
    missing = [C.COMPARE_METHODS[m].label for m in chosen if result.row(m) is None]
    extra = f" Not in the shipped file: {', '.join(missing)}." if missing else ""
    runs = full.meta.get("runs") or []
    how = f" ({len(runs)} runs; each run's command is in the JSON download)" if len(runs) > 1 else ""
    status = (f"Precomputed comparison: {CV.describe(full)}{note}.{extra} "
              f"Made with `{full.meta.get('command', 'demos/make_precomputed.py')}`{how}.")
    return result, status


def check_live_inputs(methods: Any, task: Any, seed: Any, steps: Any, max_steps: int) -> tuple[list[str], str, int, int]:
    """Validated (methods, task, seed, steps); TrainingConfigError says what is wrong."""
    chosen = [m for m in (methods or []) if m in C.COMPARE_METHODS]
    if not chosen:
        raise TrainingConfigError("tick at least one method to compare")
    if task not in BUILTIN_TASKS:
        raise TrainingConfigError(f"choose a built-in task ({', '.join(BUILTIN_TASKS)})")
    try:
        seed_value, steps_value = float(seed), float(steps)
    except (TypeError, ValueError):
        raise TrainingConfigError("seed and steps must be whole numbers") from None
    if not (math.isfinite(seed_value) and seed_value == int(seed_value) and 0 <= seed_value < 2**31):
        raise TrainingConfigError(f"seed must be a whole number between 0 and {2**31 - 1}, got {seed}")
    if not (math.isfinite(steps_value) and steps_value == int(steps_value) and 1 <= steps_value <= max_steps):
        raise TrainingConfigError(f"steps must be a whole number between 1 and {max_steps}, got {steps}")
    return chosen, str(task), int(seed_value), int(steps_value)


def progress_text(event: C.CompareEvent, steps: int, started: float) -> str:
    label = C.COMPARE_METHODS[event.key].label if event.key in C.COMPARE_METHODS else ""
    head = f"Running **{label}** ({event.index + 1} of {event.total})"
    if event.kind == "start":
        return f"{head}: building the model…"
    if event.kind == "step":
        r = event.record
        return (f"{head}: step {r['step']} / {steps}, loss {r['loss']:.3f}, "
                f"{r['sec_per_step']:.2f} s/step · {time.monotonic() - started:.0f} s so far")
    if event.kind == "eval":
        return f"{head}: step {event.record['step']}, held-out accuracy {100 * event.record['accuracy']:.1f}%"
    if event.kind == "row":
        if event.index + 1 >= event.total:  # the last one: nothing is measured after it
            return (f"{head}: done; all {event.total} methods have finished, drawing the final table…"
                    if event.total > 1 else f"{head}: done; drawing the final table…")
        return f"{head}: done; starting method {event.index + 2} of {event.total}…"
    return head


def live_updates(events: Iterable[C.CompareEvent], steps: int, started: float,
                 clock: Callable[[], float] = time.monotonic) -> Iterator[dict[str, Any]]:
    """What a live comparison shows as its events come: plain values keyed like `views`, plus
    "status" and "result" (the comparison so far, for the downloads).

    The table, summary and bars are redrawn after every finished method (its
    "row" event), so the table fills method by method; the curves also at most
    every PLOT_INTERVAL seconds between evaluations. The last update is the
    finished comparison with its closing status.
    """
    last_draw = 0.0
    result: Optional[C.CompareResult] = None
    for event in events:
        result = event.result
        if event.kind == "done":
            break
        if event.kind == "error":
            yield {"status": f"**{C.COMPARE_METHODS[event.key].label}:** {event.record['message']}"}
            continue
        update: dict[str, Any] = {"status": progress_text(event, steps, started)}
        if event.kind == "row":
            update.update(views(result), result=result)
            last_draw = clock()
        elif event.kind == "eval" and clock() - last_draw > PLOT_INTERVAL:
            update["kept"] = CV.kept_figure(result)
            last_draw = clock()
        yield update
    if result is None:
        return
    stopped = [r.label for r in result.rows if r.status != "ok"]
    note = f" Incomplete: {', '.join(stopped)} (see the note column)." if stopped else ""
    yield {"status": f"Live comparison finished in {clock() - started:.0f} s: {CV.describe(result)}.{note}",
           **views(result), "result": result}


# -- layout and events --------------------------------------------------------------
def build_compare_tab(ctx: AppContext) -> None:
    """Create the Compare tab's components and events inside the current Gradio context."""
    settings = ctx.settings
    max_steps = max(1, min(settings.max_steps, MAX_LIVE_STEPS))
    first, first_status = load_precomputed_view(BUILTIN_TASKS[0], list(C.DEFAULT_METHODS))
    first_views = views(first)
    first_csv, first_json = export_files(first)

    gr.Markdown(INTRO)
    gr.Markdown(defaults_note(), elem_id="compare-defaults-note")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            methods = gr.CheckboxGroup(CV.method_choices(), value=list(C.DEFAULT_METHODS), label="methods",
                                       elem_id="compare-methods")
            with gr.Accordion("About the methods and their learning rates", open=False):
                gr.Markdown(methods_help_markdown())
        with gr.Column(scale=2):
            with gr.Row():
                task = gr.Dropdown(list(BUILTIN_TASKS), value=BUILTIN_TASKS[0], label="task",
                                   elem_id="compare-task")
                seed = gr.Number(0, precision=0, minimum=0, label="seed", elem_id="compare-seed")
            steps = gr.Slider(1, max_steps, value=min(DEFAULT_LIVE_STEPS, max_steps), step=1,
                              label="steps per method (live run)", elem_id="compare-steps")
            with gr.Row():
                load = gr.Button("Load precomputed", variant="primary", elem_id="compare-load")
                run = gr.Button("Run live", variant="secondary", elem_id="compare-run")
                stop = gr.Button("Stop", variant="stop", elem_id="compare-stop")
    status = gr.Markdown(first_status, elem_id="compare-status")
    summary = gr.Markdown(first_views["summary"], elem_id="compare-summary")
    table = gr.Dataframe(first_views["table"], interactive=False, wrap=True, max_height=520,
                         label="comparison (one row per method)", elem_id="compare-table",
                         buttons=["fullscreen", "copy"], pinned_columns=1,
                         # wide enough for "6.62e-08 ± 2e-09" and "0.946 ± 0.486" on one line (the ± broke off)
                         column_widths=TABLE_WIDTHS)
    with gr.Accordion("What the columns mean", open=False, elem_id="compare-table-help"):
        gr.Markdown(column_help_markdown())
    kept = gr.Plot(first_views["kept"], show_label=False, elem_id="compare-kept-plot")
    bars: dict[str, gr.Plot] = {}
    for row_keys in (BAR_KEYS[:3], BAR_KEYS[3:]):
        with gr.Row(equal_height=True):
            for key in row_keys:
                bars[key] = gr.Plot(first_views[key], show_label=False, min_width=280,
                                    elem_id=f"compare-bars-{key.replace('_', '-')}")
    with gr.Row():
        csv_button = gr.DownloadButton("Download table (CSV)", first_csv, elem_id="compare-export-csv",
                                       interactive=first_csv is not None)
        json_button = gr.DownloadButton("Download everything (JSON)", first_json, elem_id="compare-export-json",
                                        interactive=first_json is not None)

    view_outputs = [table, summary, kept, *[bars[k] for k in BAR_KEYS]]

    def view_updates(result: Optional[C.CompareResult]) -> dict:
        values = views(result)
        updates = {table: values["table"], summary: values["summary"], kept: values["kept"]}
        updates.update({bars[k]: values[k] for k in BAR_KEYS})
        return updates

    def export_updates(result: Optional[C.CompareResult]) -> dict:
        csv_path, json_path = export_files(result)
        return {csv_button: gr.update(value=csv_path, interactive=csv_path is not None),
                json_button: gr.update(value=json_path, interactive=json_path is not None)}

    def on_load(task_name: str, chosen: list[str]) -> dict:
        result, text = load_precomputed_view(task_name, chosen)
        if result is None:  # keep what is shown; say why nothing new
            return {status: text}
        return {status: text, **view_updates(result), **export_updates(result)}

    def on_run(chosen: list[str], task_name: str, seed_value: Any, steps_value: Any,
               request: gr.Request) -> Iterator[dict]:
        try:
            keys, task_key, seed_int, steps_int = check_live_inputs(chosen, task_name, seed_value,
                                                                    steps_value, max_steps)
        except TrainingConfigError as exc:
            yield {status: f"**Cannot start:** {exc}"}
            return
        slot = f"{getattr(request, 'session_hash', None) or 'anonymous'}:compare"
        registry = ctx.runs  # it also knows who is comparing now (one live comparison per visitor)
        if not registry.claim_compare(slot):
            yield {status: "A live comparison is already running in this tab: stop it first."}
            return
        try:
            while (place := registry.try_slot(slot)) > 0:
                yield {status: f"Waiting for a training slot: number {place} in line "
                               f"(this server trains {settings.max_concurrent_runs} runs at a time)…"}
                time.sleep(WAIT_POLL)
            yield from _stream(keys, task_key, seed_int, steps_int)
        except ServerBusy as exc:
            yield {status: f"**Server busy:** {exc}"}
        finally:
            registry.leave(slot)
            registry.end_compare(slot)

    def _stream(keys: list[str], task_key: str, seed_int: int, steps_int: int) -> Iterator[dict]:
        started = time.monotonic()
        yield {status: f"Starting a live comparison of {len(keys)} method(s) on **{task_key}**, "
                       f"{steps_int} steps each…", **view_updates(None)}
        meta = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": "Compare tab, Run live",
                "device": "this server"}
        components = {"status": status, "table": table, "summary": summary, "kept": kept, **bars}
        try:
            events = C.compare_runs(keys, task_key, seed=seed_int, steps=steps_int,
                                    max_seconds=settings.max_seconds, meta=meta)
            for values in live_updates(events, steps_int, started):
                update = {components[k]: v for k, v in values.items() if k in components}
                if "result" in values:
                    update.update(export_updates(values["result"]))
                yield update
        except (TrainingConfigError, ModelLoadError) as exc:
            yield {status: f"**Cannot run the comparison:** {exc}"}

    # Changing the task does not reload by itself: a live comparison on screen stays until asked.
    load.click(on_load, [task, methods], [status, *view_outputs, csv_button, json_button],
               concurrency_limit=None, api_visibility="private")
    run_event = run.click(on_run, [methods, task, seed, steps], [status, *view_outputs, csv_button, json_button],
                          concurrency_limit=max(1, settings.max_concurrent_runs), concurrency_id="compare-live",
                          show_progress="hidden", api_visibility="private")
    stop.click(lambda: "Stopped. Methods a live run had finished stay in the table and the downloads.",
               None, status, cancels=[run_event],
               api_visibility="private")
