"""Train: a worker thread trains the visitor's run; a generator watches it and draws.

Training runs in a worker thread per run; the streaming generator watches it and
never holds it up. It redraws at most every ``MIN_INTERVAL`` seconds, and each
kind of view only as often as keeps its drawing cost under ``BUDGET`` of the
wall time (``Throttle``), so the live views cost the run a few percent at most.
"""
from __future__ import annotations

import contextvars
import queue
import threading
import time
from typing import Any, Iterator, Optional

from qgoft_core.explore.models import ModelLoadError
from qgoft_core.explore.training import TrainingConfigError, TrainingDiverged, TrainingRun

from ui import train_views as V
from ui.runs import ModelNotAllowed, RunRegistry, ServerBusy, Visitor
from ui.train.controls import Controls
from ui.train.session import prepare_run, use_cpu_threads
from ui.zerogpu import training_events

MIN_INTERVAL = 0.5  # seconds between two updates of the page, at least (<= 2 per second)
BUDGET = 0.04  # each kind of view may cost at most this fraction of the training time
WAIT_POLL = 1.0  # seconds between two looks at the waiting line
TICK = 1.0  # the watching generator yields at least this often, even with nothing new


class Throttle:
    """When to redraw each kind of view: at most every `min_interval` s, and within `budget`.

    A view that took c seconds to draw is next drawn no sooner than c / budget
    seconds later, so drawing it costs at most `budget` of the wall time.
    """

    def __init__(self, min_interval: float = MIN_INTERVAL, budget: float = BUDGET, clock=time.perf_counter):
        self.min_interval, self.budget, self.clock = min_interval, budget, clock
        self.last: dict[str, float] = {}
        self.cost: dict[str, float] = {}

    def due(self, kind: str, now: Optional[float] = None) -> bool:
        now = self.clock() if now is None else now
        if kind not in self.last:
            return True
        wait = max(self.min_interval, self.cost.get(kind, 0.0) / self.budget)
        return now - self.last[kind] >= wait

    def draw(self, kind: str, fn, *args):
        """Call fn(*args), record its cost for `kind`, return its result."""
        start = self.clock()
        result = fn(*args)
        end = self.clock()
        self.last[kind] = end
        self.cost[kind] = end - start
        return result


def message_views(visitor: Visitor, state: str, message: str) -> dict[str, Any]:
    """Only the status line and the run info, saying `message`."""
    return {V.STATUS: V.status_markdown(visitor.run, state, message),
            V.INFO: V.run_info(visitor.run, state, message, visitor.run_id)}


def problem(exc: BaseException) -> str:
    return f"⚠️ {exc}"


def train_stream(registry: RunRegistry, session: Optional[str], controls: Controls,
                 throttle: Optional[Throttle] = None) -> Iterator[dict[str, Any]]:
    """Train the visitor's run up to `controls.steps`, yielding view updates (dicts keyed by element id).

    The run trains in a thread of its own (``_train_worker``); this generator only watches
    it and draws. So drawing never holds training up, and the generator reaches a ``yield``
    at least every ``TICK`` seconds: Gradio can cancel it (Pause, a closed tab) at once. When
    it is cancelled it sets the visitor's stop flag, and the worker stops after its step.
    """
    visitor = registry.visitor(session)
    registry.wait_until_idle(visitor, timeout=10.0)  # a Pause just pressed: let its step finish
    if not registry.begin(visitor):
        yield message_views(visitor, "training", "A training action is already running in this tab.")
        return
    handed_over = False
    try:
        granted = yield from _wait_for_slot(registry, visitor)
        if not granted:
            return
        yield message_views(visitor, "preparing", "")
        news: queue.SimpleQueue = queue.SimpleQueue()
        # copy_context: the worker sees Gradio's request context (ZeroGPU's quota reads it).
        worker = threading.Thread(target=contextvars.copy_context().run, daemon=True,
                                  args=(_train_worker, registry, visitor, controls, news),
                                  name=f"train-{visitor.run_id}")
        worker.start()
        handed_over = True  # from here on the worker gives back the slot and the busy flag
        yield from _watch(visitor, news, throttle or Throttle())
    finally:
        if handed_over:
            visitor.stop.set()  # cancelled (or finished): the worker stops after its current step
        else:
            registry.leave(visitor.session)
            registry.end(visitor)


def _wait_for_slot(registry: RunRegistry, visitor: Visitor) -> Iterator[dict[str, Any]]:
    """Yield "server busy" messages until the visitor holds a training slot; returns whether it does."""
    while not visitor.stop.is_set():
        try:
            place = registry.try_slot(visitor.session)
        except ServerBusy as exc:
            yield message_views(visitor, "error", problem(exc))
            return False
        if place == 0:
            return True
        load = registry.load()
        yield message_views(visitor, "waiting", f"Server busy: {load['active']} runs are training (the limit "
                            f"is {load['limit']}); you are number {place} of {load['waiting']} waiting. "
                            "Training starts by itself when a slot frees up.")
        visitor.stop.wait(WAIT_POLL)
    return False


def _train_worker(registry: RunRegistry, visitor: Visitor, controls: Controls, news: queue.SimpleQueue) -> None:
    """Build (or reuse) the run and train it to its step target; report through `news`.

    Messages: ("note", text) when the page should say something, ("event", kind) per engine
    event, then one ("end", state, message). Gives back
    the training slot and the visitor's busy flag before the end message.
    """
    state, message = "done", ""
    try:
        use_cpu_threads(registry)
        try:
            run, message = prepare_run(registry, visitor, controls)
        except (TrainingConfigError, ModelLoadError, ModelNotAllowed) as exc:
            state, message = "error", problem(exc)
            return
        if message:
            news.put(("note", message))
        if run.step_count >= run.config.steps:
            state, message = "done", (f"Already at step {run.step_count}: raise **Steps** to train further, "
                                      "or **Reset**.")
            return
        cap = float(registry.settings.max_seconds)
        seconds_before, started = visitor.run_seconds, time.perf_counter()
        for kind, _record in training_events(run):
            visitor.run_seconds = seconds_before + time.perf_counter() - started
            visitor.last_seen = time.monotonic()
            news.put(("event", kind))
            if visitor.stop.is_set():
                state = "paused"
                break
            if visitor.run_seconds > cap:
                state, message = "stopped", (f"Stopped: this server allows {cap:g} s of training per run. "
                                             "Export what you have, or Reset to start again.")
                break
    except TrainingDiverged as exc:
        state, message = "stopped", problem(exc)
    except Exception as exc:  # noqa: BLE001 - whatever breaks, the page is told and the server lives on
        state, message = "error", f"⚠️ Training failed: {type(exc).__name__}: {exc}"
    finally:
        registry.leave(visitor.session)
        registry.end(visitor)
        news.put(("end", state, message))


def _watch(visitor: Visitor, news: queue.SimpleQueue, throttle: Throttle) -> Iterator[dict[str, Any]]:
    """Draw what the worker reports, at most every MIN_INTERVAL s and within the throttle's budget."""
    last_yield, drawn_snapshots = time.perf_counter(), -1  # -1: nothing drawn yet (draw as soon as possible)
    note, dirty = "", False  # dirty: the worker reported something not drawn yet
    while True:
        wait = TICK if not dirty else max(0.02, MIN_INTERVAL - (time.perf_counter() - last_yield))
        items = []
        try:
            items.append(news.get(timeout=wait))
            while True:
                items.append(news.get_nowait())
        except queue.Empty:
            pass
        note = next((item[1] for item in items if item[0] == "note"), note)
        end = next((item for item in items if item[0] == "end"), None)
        run = visitor.run
        if end is not None:
            _, state, message = end
            if state == "paused":
                return  # the Pause button draws the final views itself
            yield V.all_views(run, visitor.view, state, message or note, visitor.run_id)
            return
        dirty = dirty or bool(items)
        now = time.perf_counter()
        # Something to draw: the step-0 evaluation (loss and accuracy) comes before the snapshot.
        ready = run is not None and bool(run.history.evals or run.history.snapshots)
        if dirty and ready and (drawn_snapshots < 0 or now - last_yield >= MIN_INTERVAL):
            update = _live_update(run, visitor, throttle, drawn_snapshots, note)
            if V.TIMELINE in update:
                drawn_snapshots = len(run.history.snapshots)
            dirty, last_yield = False, time.perf_counter()
            yield update
        elif now - last_yield >= TICK:
            last_yield = now
            yield {}  # nothing to draw: a yield all the same, so that a cancel lands at once


def _live_update(run: TrainingRun, visitor: Visitor, throttle: Throttle, drawn_snapshots: int,
                 note: str = "") -> dict[str, Any]:
    update = {V.STATUS: V.status_markdown(run, "training", note),
              V.INFO: V.run_info(run, "training", "", visitor.run_id)}
    if throttle.due("loss"):
        update[V.LOSS_PLOT] = throttle.draw("loss", V.loss_view, run)
    new_snapshot = len(run.history.snapshots) > max(drawn_snapshots, 0)
    if drawn_snapshots < 0 or (new_snapshot and throttle.due("snapshot")):
        if visitor.view.snapshot_step is None:
            update.update(throttle.draw("snapshot", V.snapshot_views, run, visitor.view))
        else:  # the visitor is looking at an older step: keep it, only stretch the timeline
            update.update(V.timeline_only(run))
    return update
