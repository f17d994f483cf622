"""Train: the visitor's run takes its turns in the server's rotation; a generator watches and draws.

Pressing Train puts the visitor's run into the training rotation (``ui.scheduler``,
owned by the registry): a fixed pool of workers does one step of every active run in
turn, so every visitor's run moves from the first seconds, however many pressed Train.
The run's first turn builds it and draws its step-0 views (from the cached base-model
embeddings); each later turn is one optimiser step, with the evaluation and snapshot
that follow it. The streaming generator only watches and draws, and never holds a
worker: it redraws at most every ``MIN_INTERVAL`` seconds, each kind of view only as
often as keeps its drawing cost under ``BUDGET`` of the wall time (``Throttle``), and
tells a visitor whose run waits for its turn where it is in the rotation and how long
a step takes, measured.

Caps: ``QGOFT_MAX_STEPS`` bounds the steps, ``QGOFT_MAX_SECONDS`` the run's own
training time (its turns only, not the time it waits for them).
"""
from __future__ import annotations

import contextvars
import queue
import time
from typing import Any, Iterator, Optional

from qgoft_core.explore.models import ModelLoadError
from qgoft_core.explore.training import TrainingConfigError, TrainingDiverged, TrainingRun

from ui import memory
from ui import train_views as V
from ui.runs import ModelNotAllowed, RunRegistry, ServerBusy, Visitor
from ui.scheduler import Turn
from ui.train import earlier as E
from ui.train import teacher
from ui.train.controls import Controls
from ui.train.session import prepare_run
from ui.zerogpu import training_events

MIN_INTERVAL = 0.5  # seconds between two updates of the page, at least (<= 2 per second)
BUDGET = 0.04  # each kind of view may cost at most this fraction of the training time
SERVER_BUDGET = 0.1  # ...and all visitors' drawing together at most this fraction of the wall time (one visitor: 2 x BUDGET)
TICK = 1.0  # the watching generator yields at least this often, even with nothing new
LESSONS_HINT = "While you wait: **Watch a lesson** (below the Train buttons) replays a finished run at once."


class Throttle:
    """When to redraw each kind of view: at most every `min_interval` s, and within `budget`.

    A view that took c seconds to draw is next drawn no sooner than c / budget
    seconds later, so drawing it costs at most `budget` of the wall time. With
    `watchers` (how many visitors are drawing now) the budget is also split so that
    all of them together stay within `server_budget`: thirty students' charts are
    drawn by the same two cores that train their runs (and by one Python
    interpreter), so each one's charts redraw less often rather than all runs
    slowing down.
    """

    def __init__(self, min_interval: float = MIN_INTERVAL, budget: float = BUDGET, clock=time.perf_counter,
                 watchers=None, server_budget: float = SERVER_BUDGET):
        self.min_interval, self.clock = min_interval, clock
        self._budget, self.server_budget, self.watchers = budget, server_budget, watchers
        self.last: dict[str, float] = {}
        self.cost: dict[str, float] = {}

    @property
    def budget(self) -> float:
        """This visitor's share: `budget`, or less when many draw at once."""
        if self.watchers is None:
            return self._budget
        return min(self._budget, self.server_budget / max(1, int(self.watchers())))

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

    The run trains in the server's rotation (``training_turn``, one quantum per turn); this
    generator only watches it and draws. It reaches a ``yield`` at least every ``TICK``
    seconds, so Gradio can cancel it (Pause, a closed tab) at once; then the run leaves
    the rotation (at once while it waits, after its step while it runs).
    """
    visitor = registry.visitor(session)
    registry.wait_until_idle(visitor, timeout=10.0)  # a Pause just pressed: let its step finish
    if not registry.begin(visitor):
        yield message_views(visitor, "training", "A training action is already running in this tab.")
        return
    news: queue.SimpleQueue = queue.SimpleQueue()
    outcome = {"state": "paused", "message": ""}
    work = InContext(training_turn(registry, visitor, controls, news, outcome))
    try:
        turn = registry.submit(visitor, work, on_end=lambda t: turn_ended(registry, visitor, t, news, outcome))
    except ServerBusy as exc:
        registry.end(visitor)
        yield message_views(visitor, "error", f"{problem(exc)}\n\n{LESSONS_HINT}")
        return
    try:
        yield from _watch(registry, visitor, turn, news, throttle or Throttle(watchers=registry.scheduler.active))
    finally:
        visitor.stop.set()  # cancelled (or finished): the run stops after its current step
        registry.scheduler.cancel(turn)


class InContext:
    """A turn's work run inside the context of the event that started it (ZeroGPU's quota
    reads Gradio's request from it), whichever worker runs the quantum."""

    def __init__(self, work: Iterator[Any]):
        self.work = work
        self.context = contextvars.copy_context()

    def __iter__(self) -> "InContext":
        return self

    def __next__(self) -> Any:
        return self.context.run(next, self.work)

    def close(self) -> None:
        self.context.run(self.work.close)


def next_quantum(events: Iterator[tuple[str, dict]], eval_every: int, target: int) -> list[tuple[str, dict]]:
    """The engine events of one turn: one optimiser step, with the evaluation and snapshot that follow
    it (the step-0 evaluation and snapshot are a turn of their own). Empty when the run has ended."""
    batch: list[tuple[str, dict]] = []
    for kind, record in events:
        batch.append((kind, record))
        if kind == "step":
            step = int(record.get("step", 0))
            if step % max(1, eval_every) == 0 or step >= target:
                continue  # its evaluation and snapshot come in this turn too
            break
        if kind == "snapshot":
            break
    return batch


def training_turn(registry: RunRegistry, visitor: Visitor, controls: Controls, news: queue.SimpleQueue,
                  outcome: dict) -> Iterator[None]:
    """The visitor's training, cut into turns: each ``next()`` is one quantum (see ``next_quantum``).

    The first builds (or reuses) the run. Reports through `news` ("note", text) and ("event", kind);
    leaves its end state and message in `outcome` (``turn_ended`` reports them). A run that fails
    with anything but a divergence is dropped, and its memory with it.
    """
    def end(state: str, message: str = "") -> None:
        outcome.update(state=state, message=message)

    try:
        try:
            run, note = prepare_run(registry, visitor, controls)
        except (TrainingConfigError, ModelLoadError, ModelNotAllowed) as exc:
            return end("error", problem(exc))
        if note:
            news.put(("note", note))
        target = run.config.steps
        if run.step_count >= target:
            return end("done", f"Already at step {run.step_count}: {teacher.raise_steps_hint(visitor.hidden)}")
        events = iter(training_events(run))
        cap = float(registry.settings.max_seconds)
        while True:
            started = time.perf_counter()
            batch = next_quantum(events, run.config.eval_every, target)
            visitor.run_seconds += time.perf_counter() - started  # its own step time, not its wait
            visitor.last_seen = time.monotonic()
            for kind, _record in batch:
                news.put(("event", kind))
            if not batch or run.step_count >= target:
                return end("done")
            if visitor.stop.is_set():
                return end("paused")
            if visitor.run_seconds > cap:
                return end("stopped", f"Stopped: this server allows {cap:g} s of training per run (its own "
                                      "steps, not the time it waited for them). "
                                      f"{teacher.time_cap_hint(visitor.hidden)}")
            yield  # the end of this turn: the next run in the rotation takes the worker
    except TrainingDiverged as exc:
        end("stopped", problem(exc))
    except Exception as exc:  # noqa: BLE001 - whatever breaks, this visitor is told and the server lives on
        end("error", failure_text(exc))
        drop_run(visitor)


def failure_text(exc: BaseException) -> str:
    return (f"⚠️ Training failed: {type(exc).__name__}: {exc}. The run was dropped; press **Train** to start "
            "a new one (other visitors' runs are not affected).")


def drop_run(visitor: Visitor) -> None:
    """Forget a run that failed (out of memory, a bug): its state cannot be trusted."""
    visitor.run, visitor.run_key, visitor.run_seconds = None, None, 0.0


def turn_ended(registry: RunRegistry, visitor: Visitor, turn: Turn, news: queue.SimpleQueue,
               outcome: dict) -> None:
    """The turn left the rotation (finished, cancelled or failed): free the visitor, say how it ended."""
    state, message = outcome["state"], outcome["message"]
    if turn.error is not None and not isinstance(turn.error, GeneratorExit):
        state, message = "error", failure_text(turn.error)
        drop_run(visitor)
    if visitor.turn is turn:
        visitor.turn = None
    registry.end(visitor)
    news.put(("end", state, message))
    memory.trim_malloc()  # a run's training leaves freed activations in malloc's heaps: give them back


def rotation_note(registry: RunRegistry, turn: Turn) -> str:
    """Where the visitor's run is in the rotation and how long it waits, measured; "" when nobody waits."""
    scheduler = registry.scheduler
    active, workers = scheduler.active(), scheduler.workers
    if active <= workers or turn.done:
        return ""
    per, place = scheduler.quantum_seconds(), scheduler.position(turn)
    text = (f"🔁 {active} runs are training on this server, {workers} step{'s' if workers > 1 else ''} at a time: "
            "every run gets one step in turn.")
    if per is not None:
        text += (f" A step takes about {per:.1f} s, so your run moves about every "
                 f"{scheduler.round_seconds():.0f} s.")
    if place > 0:
        eta = scheduler.wait_estimate(turn)
        text += f" Your run is number {place} in line" + (f"; its next step in about {eta:.0f} s." if eta else ".")
    return text


def _watch(registry: RunRegistry, visitor: Visitor, turn: Turn, news: queue.SimpleQueue,
           throttle: Throttle) -> Iterator[dict[str, Any]]:
    """Draw what the turns report, at most every MIN_INTERVAL s and within the throttle's budget."""
    last_yield, drawn_snapshots = time.perf_counter(), -1  # -1: nothing drawn yet (draw as soon as possible)
    note, dirty = "", False  # dirty: the run reported something not drawn yet
    first = True
    while True:
        wait = (0.05 if first else TICK) if not dirty else max(0.02, MIN_INTERVAL - (time.perf_counter() - last_yield))
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
            yield V.all_views(run, visitor.view, state, message or note, visitor.run_id, E.shelf(visitor))
            return
        dirty = dirty or bool(items)
        now = time.perf_counter()
        # Something to draw: the step-0 evaluation (loss and accuracy) comes before the snapshot.
        ready = run is not None and turn.quanta > 0 and bool(run.history.evals or run.history.snapshots)
        if dirty and ready and (drawn_snapshots < 0 or now - last_yield >= MIN_INTERVAL):
            update = _live_update(run, visitor, throttle, drawn_snapshots, _join(note, rotation_note(registry, turn)),
                                  registry)
            if V.TIMELINE in update:
                drawn_snapshots = len(run.history.snapshots)
            dirty, last_yield = False, time.perf_counter()
            yield update
        elif first or now - last_yield >= TICK:
            first, last_yield = False, now
            waiting = rotation_note(registry, turn)
            if not ready and turn.quanta == 0:
                # Not built yet: say where the run is in line (a newcomer's first turn comes first).
                place = registry.scheduler.position(turn)
                text = waiting or ("Preparing your run…" if place == 0 else "Your run starts in a moment…")
                yield message_views(visitor, "waiting" if place else "preparing",
                                    _join(text, LESSONS_HINT if waiting else ""))
            elif waiting and run is not None:
                yield {V.STATUS: V.status_markdown(run, "training", _join(note, waiting, LESSONS_HINT))}
            else:
                yield {}  # nothing to draw: a yield all the same, so that a cancel lands at once


def _join(*parts: str) -> str:
    return "\n\n".join(p for p in parts if p)


def _live_update(run: TrainingRun, visitor: Visitor, throttle: Throttle, drawn_snapshots: int,
                 note: str = "", registry: Optional[RunRegistry] = None) -> dict[str, Any]:
    update = {V.STATUS: V.status_markdown(run, "training", note),
              V.INFO: V.run_info(run, "training", "", visitor.run_id)}
    shelf = E.shelf(visitor)
    earlier = shelf.curves()  # the visitor's earlier runs, drawn beside this one
    if throttle.due("loss"):
        update[V.LOSS_PLOT] = throttle.draw("loss", V.loss_view, run, earlier)
        if earlier or drawn_snapshots < 0:  # the table's row of this run follows the loss chart
            update.update(V.earlier_views(run, shelf, lean=drawn_snapshots >= 0))
    new_snapshot = len(run.history.snapshots) > max(drawn_snapshots, 0)
    shared = V.first_views_key(run, visitor.view, earlier) if drawn_snapshots < 0 and registry is not None else None
    if shared is not None:  # step 0 looks the same for every run that starts alike: drawn once
        # Only the step-0 snapshot: the run may record more while this draws.
        update.update(registry.first_views.get_or_create(
            shared, lambda: V.snapshot_views(run, visitor.view, earlier, snapshots=run.history.snapshots[:1])))
    elif drawn_snapshots < 0 or (new_snapshot and throttle.due("snapshot")):
        if visitor.view.snapshot_step is None:
            update.update(throttle.draw("snapshot", V.snapshot_views, run, visitor.view, earlier,
                                        drawn_snapshots >= 0))
        else:  # the visitor is looking at an older step: keep it, only stretch the timeline
            update.update(V.timeline_only(run))
    return update
