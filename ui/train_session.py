"""What the Train tab's buttons do: build, train, pause, step, reset a visitor's run.

No Gradio layout here: every action takes the registry, the visitor's session
and the control values, and returns (or, for training, yields) a dict of view
values keyed by element id (see ``train_views``). The Train tab maps those keys
onto its components; the UI-overhead benchmark drives the same generator
without a server.

Training runs in a worker thread per run; the streaming generator watches it and
never holds it up. It redraws at most every ``MIN_INTERVAL`` seconds, and each
kind of view only as often as keeps its drawing cost under ``BUDGET`` of the
wall time (``Throttle``), so the live views cost the run a few percent at most.
"""
from __future__ import annotations

import contextvars
import math
import queue
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Iterator, Optional

from qgoft_core.explore.registry import GIVENS_METHODS
from qgoft_core.explore.models import DEFAULT_MODEL_ID, ModelLoadError, load_base
from qgoft_core.explore.training import STEP_CAP, RunConfig, TrainingConfigError, TrainingDiverged, TrainingRun
from qgoft_core.tuners.qgoft.targets import find_targets

from ui import train_views as V
from ui.runs import ModelNotAllowed, RunRegistry, ServerBusy, Visitor
from ui.zerogpu import run_device, training_events

MIN_INTERVAL = 0.5  # seconds between two updates of the page, at least (<= 2 per second)
BUDGET = 0.04  # each kind of view may cost at most this fraction of the training time
UPLOADED = "uploaded"  # the task value that means "the visitor's own data set"
LAYER_GROUPS = {"all": "all attention and MLP layers", "attention": "attention only", "mlp": "MLP only"}
SCALING_VALUES = {"none": None, "output": "output", "input": "input"}
WAIT_POLL = 1.0  # seconds between two looks at the waiting line
TICK = 1.0  # the watching generator yields at least this often, even with nothing new


@dataclass(frozen=True)
class Controls:
    """The Train tab's settings, as the page sends them."""

    model: str = DEFAULT_MODEL_ID
    task: str = "sentiment"
    method: str = "qgoft"
    scaling: str = "none"
    layers: str = "all"
    lam: float = 0.01
    lr: float = 2e-3
    batch_size: int = 16
    steps: int = 60
    seed: int = 0

    @classmethod
    def from_inputs(cls, model, task, method, scaling, layers, lam, lr, batch_size, steps, seed) -> "Controls":
        def number(value, name, kind=float):
            try:
                result = kind(value)
            except (TypeError, ValueError):
                raise TrainingConfigError(f"{name} must be a number, got {value!r}") from None
            if not math.isfinite(float(result)):
                raise TrainingConfigError(f"{name} must be a finite number, got {value!r}")
            return result

        return cls(model=str(model or DEFAULT_MODEL_ID).strip(), task=str(task or "sentiment"),
                   method=str(method or "qgoft"), scaling=str(scaling or "none"), layers=str(layers or "all"),
                   lam=number(lam, "lambda"), lr=number(lr, "learning rate"),
                   batch_size=int(number(batch_size, "batch size")), steps=int(number(steps, "steps")),
                   seed=int(number(seed, "seed")))


def is_attention_layer(name: str) -> bool:
    """Attention projections by their module path (BERT, GPT-2, LLaMA-style, DistilBERT, MPNet)."""
    return any("attn" in part or "attention" in part for part in name.lower().split("."))


def target_modules(base, group: str) -> Optional[list[str]]:
    """The backbone layers of a layer group: None = the default (all attention and MLP layers)."""
    if group not in LAYER_GROUPS:
        raise TrainingConfigError(f"unknown layer group {group!r}; choose one of {', '.join(LAYER_GROUPS)}")
    if group == "all":
        return None
    names = find_targets(base.encoder, None)
    chosen = [n for n in names if is_attention_layer(n) == (group == "attention")]
    if not chosen:
        raise TrainingConfigError(f"this model has no {LAYER_GROUPS[group]} layers to adapt")
    return chosen


def structure_key(controls: Controls, visitor: Visitor) -> tuple:
    """Settings that need a new run when they change (lr, lambda and steps apply to the current one)."""
    task = ("uploaded", id(visitor.uploaded)) if controls.task == UPLOADED else controls.task
    return (controls.model, task, controls.method, controls.scaling, controls.layers, controls.batch_size,
            controls.seed)


def _task_for(controls: Controls, visitor: Visitor):
    if controls.task == UPLOADED:
        if visitor.uploaded is None:
            raise TrainingConfigError("no uploaded data set: upload a CSV or JSONL file first, or pick a "
                                      "built-in task")
        return visitor.uploaded
    from qgoft_core.explore.data.tasks import BUILTIN_TASKS, load_builtin_task
    if controls.task not in BUILTIN_TASKS:
        raise TrainingConfigError(f"unknown task {controls.task!r}; choose one of {', '.join(BUILTIN_TASKS)}")
    return load_builtin_task(controls.task)


_base_energies: dict[str, Any] = {}  # model id -> BaseEnergyCache shared by all runs on that base


def prepare_run(registry: RunRegistry, visitor: Visitor, controls: Controls) -> tuple[TrainingRun, str]:
    """The visitor's run for these settings: the current one (with lr, lambda, steps applied) or a new one.

    Raises TrainingConfigError / ModelLoadError / ModelNotAllowed with a message for the page.
    """
    settings = registry.settings
    if controls.steps > settings.max_steps:
        raise TrainingConfigError(f"{controls.steps} steps is above this server's limit of "
                                  f"{settings.max_steps} steps per run")
    key = structure_key(controls, visitor)
    run = visitor.run
    if run is not None and visitor.run_key == key:
        _apply_live(run, controls)
        return run, ""
    model_id = registry.check_model(controls.model)
    new_run = _new_run(model_id, controls, _task_for(controls, visitor), settings.max_steps)
    note = "Settings changed: this is a new run from step 0." if run is not None else ""
    visitor.run, visitor.run_key, visitor.run_seconds = new_run, key, 0.0
    return new_run, note


def _new_run(model_id: str, controls: Controls, task, max_steps: int) -> TrainingRun:
    """A fresh run for these settings on the shared base, with the base's layer energies shared too."""
    base = load_base(model_id)
    scaling = SCALING_VALUES.get(controls.scaling, controls.scaling)
    config = RunConfig(model=model_id, task=task.name, method=controls.method,
                       scaling=scaling if controls.method in GIVENS_METHODS else None,
                       reg_lambda=controls.lam, target_modules=target_modules(base, controls.layers),
                       lr=controls.lr, steps=controls.steps, batch_size=controls.batch_size, seed=controls.seed,
                       device=run_device(), max_steps=max_steps)
    try:
        run = TrainingRun(config, task=task, base=base)
    except ValueError as exc:  # e.g. a target that is not a linear layer
        if isinstance(exc, TrainingConfigError):
            raise
        raise TrainingConfigError(str(exc)) from None
    # The energies of the frozen base weights are the same for every run on this base: compute them once.
    run.energy_cache = _base_energies.setdefault(model_id, run.energy_cache)
    return run


def warm_up(controls: Controls = Controls()) -> None:
    """Do once, before anyone presses Train, what every first run on these settings needs.

    Loads the base, tokenises the task, and fills the caches shared by all runs on this
    base: the base's held-out embeddings (step-0 evaluation) and its layer energies.
    """
    from qgoft_core.explore.data.tasks import load_builtin_task
    _new_run(controls.model, controls, load_builtin_task(controls.task), STEP_CAP).layer_metrics()


def _apply_live(run: TrainingRun, controls: Controls) -> None:
    """Learning rate, lambda and the step target change the current run in place (no restart)."""
    probe = replace(run.config, lr=controls.lr, reg_lambda=controls.lam, steps=controls.steps)
    probe.validate()
    run.config = probe
    if run.tuned.spec.givens:
        run.tuned.qgoft.config.reg_lambda = float(controls.lam)


def use_cpu_threads(registry: RunRegistry) -> int:
    """Set the intra-op threads of the calling thread for one run, and return how many.

    PyTorch's CPU thread count is per OS thread (OpenMP): a worker thread starts with one
    whatever the main thread set. A run gets the cores (QGOFT_THREADS / CPU_CORES / all)
    shared among the runs training now, at least one: two threads fighting over one core
    are slower than one.
    """
    import torch

    from qgoft_core.explore.training import configure_cpu_threads
    cores = configure_cpu_threads()
    active = max(1, registry.load()["active"])
    threads = max(1, cores // active)
    torch.set_num_threads(threads)
    return threads


def apply_live_settings(run: TrainingRun, lr: Any, lam: Any) -> bool:
    """Set a run's learning rate and lambda now (the next step uses them); False if they are invalid."""
    try:
        lr, lam = float(lr), float(lam)
        probe = replace(run.config, lr=lr, reg_lambda=lam)
        probe.validate()
    except (TypeError, ValueError):
        return False  # half-typed or out of range: the run keeps what it had
    run.config = probe
    if run.tuned.spec.givens:
        run.tuned.qgoft.config.reg_lambda = lam
    return True


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


def _message_views(visitor: Visitor, state: str, message: str) -> dict[str, Any]:
    return {V.STATUS: V.status_markdown(visitor.run, state, message),
            V.INFO: V.run_info(visitor.run, state, message, visitor.run_id)}


def _problem(exc: BaseException) -> str:
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
        yield _message_views(visitor, "training", "A training action is already running in this tab.")
        return
    handed_over = False
    try:
        granted = yield from _wait_for_slot(registry, visitor)
        if not granted:
            return
        yield _message_views(visitor, "preparing", "")
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
            yield _message_views(visitor, "error", _problem(exc))
            return False
        if place == 0:
            return True
        load = registry.load()
        yield _message_views(visitor, "waiting", f"Server busy: {load['active']} runs are training (the limit "
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
            state, message = "error", _problem(exc)
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
        state, message = "stopped", _problem(exc)
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


# -- one-shot actions ---------------------------------------------------------------------
def _claim(registry: RunRegistry, visitor: Visitor, timeout: float = 30.0) -> bool:
    """Stop whatever this visitor is training and claim the run for a one-shot action."""
    if visitor.busy:
        visitor.stop.set()
        registry.wait_until_idle(visitor, timeout)
    return registry.begin(visitor)


def pause(registry: RunRegistry, session: Optional[str]) -> dict[str, Any]:
    """Stop after the current step; the run keeps its state and Train continues from there."""
    visitor = registry.visitor(session)
    visitor.stop.set()
    registry.wait_until_idle(visitor, timeout=30.0)
    state = "paused" if visitor.run is not None and visitor.run.step_count else "ready"
    return V.all_views(visitor.run, visitor.view, state, "", visitor.run_id)


def step_once(registry: RunRegistry, session: Optional[str], controls: Controls) -> dict[str, Any]:
    """Exactly one optimiser step (then an evaluation and a snapshot, so every view shows it)."""
    visitor = registry.visitor(session)
    if not _claim(registry, visitor):
        return _message_views(visitor, "training", "A training action is still running; try again.")
    try:
        try:
            place = registry.try_slot(visitor.session)
        except ServerBusy as exc:
            return _message_views(visitor, "error", _problem(exc))
        if place:
            return _message_views(visitor, "waiting", f"Server busy: {registry.load()['active']} runs are "
                                  "training. Try again in a moment.")
        try:
            run, note = prepare_run(registry, visitor, controls)
        except (TrainingConfigError, ModelLoadError, ModelNotAllowed) as exc:
            return _message_views(visitor, "error", _problem(exc))
        if run.step_count >= registry.settings.max_steps:
            return V.all_views(run, visitor.view, "stopped", f"This server allows {registry.settings.max_steps} "
                               "steps per run.", visitor.run_id)
        use_cpu_threads(registry)
        started = time.perf_counter()
        try:
            for _ in training_events(run, steps=1):
                pass
        except TrainingDiverged as exc:
            return V.all_views(run, visitor.view, "stopped", _problem(exc), visitor.run_id)
        visitor.run_seconds += time.perf_counter() - started
        return V.all_views(run, visitor.view, "paused", note, visitor.run_id)
    finally:
        registry.leave(visitor.session)
        registry.end(visitor)


def reset(registry: RunRegistry, session: Optional[str]) -> dict[str, Any]:
    """Back to step 0 with the same initialisation and data order (a new seed is a separate action)."""
    visitor = registry.visitor(session)
    if not _claim(registry, visitor):
        return _message_views(visitor, "training", "A training action is still running; try again.")
    try:
        if visitor.run is not None:
            visitor.run.reset()
            visitor.run_seconds = 0.0
        visitor.view.snapshot_step = None
        return V.all_views(visitor.run, visitor.view, "ready", "Reset to step 0 (same initialisation).",
                           visitor.run_id)
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
        return seed, _message_views(visitor, "training", "A training action is still running; try again.")
    try:
        run = visitor.run
        if run is not None:
            run.new_seed(seed)
            visitor.run_seconds = 0.0
            if visitor.run_key is not None:
                visitor.run_key = visitor.run_key[:-1] + (seed,)
        visitor.view.snapshot_step = None
        return seed, V.all_views(run, visitor.view, "ready", f"New seed {seed}: a fresh initialisation.",
                                 visitor.run_id)
    finally:
        registry.end(visitor)
