"""The Train tab's one-shot actions: Pause, Step +1, Reset, New seed; a data upload; an export;
forgetting the earlier runs, and what pressing Train would do now (``new_run_notice``).

Each takes the registry and the visitor's session (and what the page sent) and
returns plain values: view dicts keyed by element id (``ui.train_views``), text
for the page. No Gradio here; ``ui.train.events`` turns them into updates.
"""
from __future__ import annotations

import time
from typing import Any, Optional

from qgoft_core.explore.data.user_files import DataFileError, load_text_file_with_report
from qgoft_core.explore.models import ModelLoadError
from qgoft_core.explore.registry import method_label
from qgoft_core.explore.training import TrainingConfigError, TrainingDiverged

from ui import exports
from ui import train_views as V
from ui.runs import ModelNotAllowed, RunRegistry, ServerBusy, Visitor
from ui.train import earlier as E
from ui.train.controls import UPLOADED, Controls, structure_key
from ui.train.session import prepare_run
from ui.train.stream import InContext, LESSONS_HINT, drop_run, failure_text, message_views, problem
from ui.zerogpu import training_events

BUSY = "A training action is still running; try again."
STEP_WAIT = 600.0  # seconds Step +1 waits for its turn, at most


def _stop(registry: RunRegistry, visitor: Visitor, timeout: float = 30.0) -> None:
    """Stop whatever this visitor is training: out of the rotation at once if it waits for its turn,
    after its step if the step runs."""
    visitor.stop.set()
    registry.cancel_turn(visitor)
    registry.wait_until_idle(visitor, timeout)


def _claim(registry: RunRegistry, visitor: Visitor, timeout: float = 30.0) -> bool:
    """Stop whatever this visitor is training and claim the run for a one-shot action."""
    if visitor.busy:
        _stop(registry, visitor, timeout)
    return registry.begin(visitor)


def pause(registry: RunRegistry, session: Optional[str]) -> dict[str, Any]:
    """Stop after the current step; the run keeps its state and Train continues from there."""
    visitor = registry.visitor(session)
    _stop(registry, visitor)
    state = "paused" if visitor.run is not None and visitor.run.step_count else "ready"
    return V.all_views(visitor.run, visitor.view, state, "", visitor.run_id, E.shelf(visitor))


def step_once(registry: RunRegistry, session: Optional[str], controls: Controls) -> dict[str, Any]:
    """Exactly one optimiser step (then an evaluation and a snapshot, so every view shows it).

    The step takes one turn in the rotation like any other run's step; this waits for it.
    """
    visitor = registry.visitor(session)
    if not _claim(registry, visitor):
        return message_views(visitor, "training", BUSY)
    outcome: dict[str, Any] = {"state": "paused", "message": ""}

    def one_step():
        try:
            run, note = prepare_run(registry, visitor, controls)
        except (TrainingConfigError, ModelLoadError, ModelNotAllowed) as exc:
            outcome.update(state="error", message=problem(exc))
            return
        outcome["message"] = note
        if run.step_count >= registry.settings.max_steps:
            outcome.update(state="stopped", message=f"This server allows {registry.settings.max_steps} steps "
                                                    "per run.")
            return
        started = time.perf_counter()
        try:
            for _ in training_events(run, steps=1):
                pass
        except TrainingDiverged as exc:
            outcome.update(state="stopped", message=problem(exc))
        except Exception as exc:  # noqa: BLE001 - this visitor is told, the server lives on
            outcome.update(state="error", message=failure_text(exc))
            drop_run(visitor)
        finally:
            visitor.run_seconds += time.perf_counter() - started
        return
        yield  # a generator: one turn

    try:
        turn = registry.submit(visitor, InContext(one_step()), on_end=lambda t: registry.end(visitor))
    except ServerBusy as exc:
        registry.end(visitor)
        return message_views(visitor, "error", f"{problem(exc)}\n\n{LESSONS_HINT}")
    if not turn.ended.wait(STEP_WAIT):
        registry.scheduler.cancel(turn)
        return message_views(visitor, "error", "⚠️ The server is too busy for a step now; try again later.")
    if turn.error is not None:
        drop_run(visitor)
        outcome.update(state="error", message=failure_text(turn.error))
    if visitor.turn is turn:
        visitor.turn = None
    if outcome["state"] == "error" and visitor.run is None:
        return message_views(visitor, "error", outcome["message"])
    return V.all_views(visitor.run, visitor.view, outcome["state"], outcome["message"], visitor.run_id,
                       E.shelf(visitor))


def reset(registry: RunRegistry, session: Optional[str]) -> dict[str, Any]:
    """Back to step 0 with the same initialisation and data order (a new seed is a separate action).
    The run so far is kept for comparison (``ui.train.earlier``)."""
    visitor = registry.visitor(session)
    if not _claim(registry, visitor):
        return message_views(visitor, "training", BUSY)
    try:
        note = ""
        if visitor.run is not None:
            note = E.kept_note(*E.shelf(visitor).keep(visitor.run))
            visitor.run.reset()
            visitor.run_seconds = 0.0
        visitor.view.snapshot_step = None
        message = "\n\n".join(m for m in ("Reset to step 0 (same initialisation).", note) if m)
        return V.all_views(visitor.run, visitor.view, "ready", message, visitor.run_id, E.shelf(visitor))
    finally:
        registry.end(visitor)


def new_seed(registry: RunRegistry, session: Optional[str], seed: Any) -> tuple[int, dict[str, Any]]:
    """The next seed: a fresh initialisation and data order; returns (seed, views)."""
    visitor = registry.visitor(session)
    try:
        seed = (int(seed) + 1) % (2**31)
    except (TypeError, ValueError):
        seed = 0
    if not _claim(registry, visitor):
        return seed, message_views(visitor, "training", BUSY)
    try:
        run, note = visitor.run, ""
        if run is not None:
            note = E.kept_note(*E.shelf(visitor).keep(run))
            run.new_seed(seed)
            visitor.run_seconds = 0.0
            if visitor.run_key is not None:
                visitor.run_key = visitor.run_key[:-1] + (seed,)
        visitor.view.snapshot_step = None
        message = "\n\n".join(m for m in (f"New seed {seed}: a fresh initialisation.", note) if m)
        return seed, V.all_views(run, visitor.view, "ready", message, visitor.run_id, E.shelf(visitor))
    finally:
        registry.end(visitor)


def upload_data(registry: RunRegistry, session: Optional[str], path: str) -> tuple[bool, str]:
    """Load the visitor's data file; (loaded, text for the page). A bad file keeps the previous task."""
    visitor = registry.visitor(session)
    limit = registry.settings.max_upload_mb * 1024 * 1024
    try:
        data, warnings = load_text_file_with_report(path, max_bytes=limit)
    except DataFileError as exc:
        return False, f"⚠️ **This file cannot be used.** {exc}\n\nThe previous task is kept."
    except Exception as exc:  # noqa: BLE001 - any other failure must not take the page down
        return False, f"⚠️ **This file cannot be read** ({type(exc).__name__}). The previous task is kept."
    registry.forget_upload(visitor)  # the previous file's tokens and embeddings
    visitor.uploaded = data
    rows = len(data.train_texts) + len(data.test_texts)
    visitor.uploaded_label = f"Your data: {data.name} ({rows} rows, {data.num_labels} classes)"
    note = "\n".join(f"- {w}" for w in warnings[:10])
    more = f"\n- … and {len(warnings) - 10} more" if len(warnings) > 10 else ""
    text = f"Loaded **{data.name}**: {len(data.train_texts)} training and {len(data.test_texts)} " \
           f"held-out examples, labels {', '.join(data.label_names)}."
    sample = registry.settings.eval_sample
    if sample and len(data.test_texts) > sample:
        text += (f"\n\nLive held-out accuracy is measured on a fixed sample of {sample:,} of the "
                 f"{len(data.test_texts):,} held-out examples, so that training stays quick.")
    if note:
        text += f"\n\nSkipped or noted:\n{note}{more}"
    return True, text


def export(registry: RunRegistry, session: Optional[str]) -> tuple[str, Optional[exports.Export]]:
    """Write the downloads of the visitor's run; (text for the page, the files or None)."""
    visitor = registry.visitor(session)
    run = visitor.run
    if run is None or not run.history.evals:
        return "Nothing to export yet: train or step the run first.", None
    if visitor.busy:
        return "Pause the run first, then export (the adapter keeps changing while it trains).", None
    try:
        visitor.export_dir = exports.new_export_dir(visitor.run_id, visitor.export_dir)
        done = exports.export_run(run, visitor.export_dir)
    except Exception as exc:  # noqa: BLE001 - an export failure is reported, the run is kept
        return f"⚠️ Export failed: {type(exc).__name__}: {exc}", None
    text = f"Exported the run at step {run.step_count}. Unzip the adapter and load it with the code below."
    if done.notes:
        text += "\n\n" + "\n".join(f"- {n}" for n in done.notes)
    return text, done


# -- earlier runs and the run that Train would start -----------------------------------------------
def forget_earlier(registry: RunRegistry, session: Optional[str]) -> dict[str, Any]:
    """Forget the visitor's earlier runs: the charts show the current run alone again."""
    visitor = registry.visitor(session)
    shelf = E.shelf(visitor)
    shelf.clear()
    return V.comparison_views(visitor.run, visitor.view, shelf)


# The settings that make a new run when they change (``controls.structure_key``, in its order).
STRUCTURE_NAMES = ("model", "task", "method", "scaling", "target layers", "batch size", "seed")


def _setting_value(name: str, value: Any) -> str:
    if name == "method":
        return method_label(str(value), short=True)
    if name == "task" and isinstance(value, tuple) and value and value[0] == UPLOADED:
        return "your data"
    return str(value)


def changed_settings(old_key: tuple, new_key: tuple) -> list[str]:
    """'method GOFT → qGOFT' for each setting that differs between two structure keys."""
    return [f"{name} {_setting_value(name, old)} → {_setting_value(name, new)}"
            for name, old, new in zip(STRUCTURE_NAMES, old_key, new_key) if old != new]


def new_run_notice(registry: RunRegistry, session: Optional[str], controls: Controls) -> str:
    """What pressing Train does now that the settings differ from the run's: a new run, the current
    one kept for comparison; or, while the current run trains, that it goes on untouched.

    "" when Train would continue the current run, or there is no trained run to keep.
    """
    visitor = registry.peek(session)
    run = visitor.run if visitor is not None else None
    if run is None or not run.step_count or visitor.run_key is None:
        return ""
    key = structure_key(controls, visitor)
    if key == visitor.run_key:
        return ""
    changes = ", ".join(changed_settings(visitor.run_key, key))
    shelf = E.shelf(visitor)
    name = f"run {shelf.number} · {method_label(run.config.method, short=True)}"
    kept = shelf.runs()
    goes = (f" {kept[-1].name}, the oldest kept run, then goes (the last {E.KEEP} are kept)."
            if len(kept) >= E.KEEP else "")
    if visitor.busy or visitor.turn is not None:
        live = [label for key_, label in (("lr", "learning-rate"), ("lam", "λ")) if key_ not in visitor.hidden]
        untouched = f", nor do {' or '.join(live)} changes from now on" if live else ""
        return (f"**Your {name} is still training, with its own settings**: this change ({changes}) does "
                f"not touch it{untouched}. Press **Pause** (or let it finish), then **▶ Train** to start the new "
                f"run from step 0; {name} is then kept for comparison (grey dotted lines in the charts, a row "
                f"under the loss chart).{goes}")
    accuracy = E.last_numbers(run)["accuracy"]
    where = f"step {run.step_count}" + (f", held-out accuracy {100 * accuracy:.1f}%" if accuracy is not None else "")
    return (f"**Pressing ▶ Train starts a new run** ({changes}) from step 0. Your current {name} ({where}) "
            f"is kept for comparison: grey dotted lines in the loss, orthogonality and energy charts, and a row "
            f"in the table under the loss chart.{goes}")
