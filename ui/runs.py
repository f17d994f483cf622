"""Who is training what: one run per visitor, a global limit on concurrent runs.

Every visitor (a browser tab, or an API client) is known by Gradio's
``request.session_hash``. The registry keeps, per visitor, their training run
(the frozen base is shared by all runs; a run owns only its adapter, head,
optimiser and metric history), their uploaded data set and what their charts
show. Nothing else about a visitor lives in module globals.

The registry is also the one owner of the app layer's process-wide caches
(one per ``AppContext``, so a test app has its own): the layer energies of each
frozen base (``base_energy_cache``) and the sessions with a live comparison
running (``claim_compare``). Each says what bounds it.

Training: every visitor who presses Train joins one rotation (``scheduler``, a
``ui.scheduler.StepScheduler``): a fixed pool of workers does one step of each
active run in turn, up to ``max_active_runs`` runs; beyond that a visitor is told
the server is full. Live comparisons (the Compare tab) still take one of
``max_concurrent_runs`` slots, with ``queue_size`` waiting in line (``try_slot``).

Closing the tab (``demo.unload``) or being idle (``finished_idle_minutes`` once the
run is finished or there is none, ``idle_minutes`` for a run paused half-way) stops
the run and frees everything that was the visitor's: the run, the uploaded data set
and what it put in the engine's caches, the export folder (``release``).

Models: ``check_model`` lets hub ids through the allow-list and local folders only
where the settings allow them (``Settings.local_models_allowed``).
"""
from __future__ import annotations

import gc
import hashlib
import os
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from qgoft_core.explore.models import DEFAULT_MODEL_ALIASES, DEFAULT_MODEL_ID

from ui import memory
from ui.scheduler import RotationFull, StepScheduler, Turn

if TYPE_CHECKING:
    from qgoft_core.explore.data.tasks import TextTask
    from qgoft_core.explore.training import TrainingRun
    from ui.settings import Settings


class ServerBusy(RuntimeError):
    """Every training slot is taken and the waiting line is full."""


class ModelNotAllowed(ValueError):
    """A model this server does not offer (QGOFT_ALLOWED_MODELS, or a local folder when hosted)."""


def looks_local(name: str) -> bool:
    """Whether `name` names something on this server's disk rather than a hub id."""
    if name.startswith(("/", ".", "~")) or "\\" in name or ".." in name or ":" in name:
        return True
    return os.path.exists(name) or os.path.exists(os.path.expanduser(name))


def views_bytes(values: dict) -> int:
    """About what a dict of drawn views holds: its serialised charts (``.plot``), 2 kB for anything else."""
    return sum(len(v.plot) if isinstance(getattr(v, "plot", None), str) else 2048 for v in values.values())


@dataclass
class ViewState:
    """What a visitor's charts show: the selected layer, colour scale and timeline position."""

    layer: Optional[str] = None  # full module path; None: the first adapted layer
    scale: str = "global"  # angle heatmap colour scale: "global" or "layer"
    snapshot_step: Optional[int] = None  # None: follow the newest snapshot


@dataclass
class Visitor:
    session: str
    run: Optional["TrainingRun"] = None
    run_key: Optional[tuple] = None  # the settings the run was built with (ui/train/controls.structure_key)
    run_seconds: float = 0.0  # training time spent in this run (the per-run cap)
    uploaded: Optional["TextTask"] = None  # the visitor's own data set, once it loaded
    uploaded_label: str = ""
    view: ViewState = field(default_factory=ViewState)
    busy: bool = False  # a training action (train / step / reset) is in progress
    stop: threading.Event = field(default_factory=threading.Event)
    last_seen: float = 0.0
    export_dir: Optional[Path] = None
    hidden: frozenset = frozenset()  # controls hidden by a teacher's link
    turn: Optional[Turn] = None  # the visitor's place in the training rotation, while Train runs
    data_keys: set = field(default_factory=set)  # cache keys of the uploaded data's splits (freed on leaving)
    earlier: Any = None  # the visitor's last runs, kept to compare: a ui/train/earlier.RunShelf (a layer above)

    @property
    def run_id(self) -> str:
        """A short, stable id of this visitor's run that reveals nothing about the session."""
        return hashlib.sha256(self.session.encode()).hexdigest()[:8]


class RunRegistry:
    """Per-visitor runs and the global training slots, safe to use from many threads."""

    def __init__(self, settings: "Settings", clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._visitors: dict[str, Visitor] = {}
        self._active: set[str] = set()  # sessions holding a training slot
        self._waiting: deque[str] = deque()  # sessions in line for one
        # model id -> the BaseEnergyCache shared by every run on that frozen base. Bounded by the
        # models this server loads (the default plus QGOFT_ALLOWED_MODELS; any hub id when that is
        # unset), never freed: the shared bases themselves stay loaded just as long.
        self._base_energies: dict[str, Any] = {}
        # "<session>:compare" of every visitor with a live comparison running (one each). Bounded by
        # the visitors comparing now: the comparison removes its own entry when it ends.
        self._comparing: set[str] = set()
        # Train's step-0 charts by what they show (``ui.train_views.first_views_key``): thirty visitors
        # pressing Train alike draw them once. Bounded by QGOFT_VIEW_CACHE_MB (least recently used go).
        from qgoft_core.explore.caches import MIB, ByteBudgetCache
        self.first_views = ByteBudgetCache("first views", max(0, settings.view_cache_mb) * MIB, size_of=views_bytes)
        # The training rotation: workers start on the first Train, not before.
        self.scheduler = StepScheduler(settings.cores(), settings.threads_per_run, settings.max_active_runs)
        self._sweeper: Optional[threading.Thread] = None

    # -- visitors -------------------------------------------------------------------
    def visitor(self, session: Optional[str]) -> Visitor:
        """The visitor of `session`, created on first sight; refreshes their last-seen time."""
        session = session or "anonymous"
        stale: list[Visitor] = []
        with self._lock:
            now = self._clock()
            found = self._visitors.get(session)
            if found is None:
                stale = self._take_idle(now)  # meeting someone new: let the long-gone go
                found = self._visitors[session] = Visitor(session)
            found.last_seen = now
        for old in stale:
            self._free(old)
        return found

    def peek(self, session: Optional[str]) -> Optional[Visitor]:
        with self._lock:
            return self._visitors.get(session or "anonymous")

    def begin(self, visitor: Visitor) -> bool:
        """Claim the visitor's one training action; False if one is already running."""
        with self._lock:
            if visitor.busy:
                return False
            visitor.busy = True
            visitor.stop.clear()
            return True

    def end(self, visitor: Visitor) -> None:
        with self._lock:
            visitor.busy = False
            visitor.last_seen = self._clock()

    def wait_until_idle(self, visitor: Visitor, timeout: float) -> bool:
        """Wait (polling) until the visitor's training action has finished its step."""
        deadline = time.monotonic() + timeout
        while visitor.busy and time.monotonic() < deadline:
            time.sleep(0.05)
        return not visitor.busy

    def __len__(self) -> int:
        with self._lock:
            return len(self._visitors)

    # -- the training rotation ------------------------------------------------------
    def submit(self, visitor: Visitor, work, on_end: Optional[Callable[[Turn], None]] = None) -> Turn:
        """Put the visitor's training `work` (an iterator of quanta) into the rotation.

        Raises ServerBusy when the rotation holds as many runs as the server admits.
        """
        try:
            turn = self.scheduler.submit(Turn(work, key=visitor.session, on_end=on_end))
        except RotationFull as exc:
            raise ServerBusy(str(exc)) from None
        visitor.turn = turn
        return turn

    def cancel_turn(self, visitor: Visitor) -> None:
        """Take the visitor's run out of the rotation (at once if it waits, else after its step)."""
        turn = visitor.turn
        if turn is not None:
            self.scheduler.cancel(turn)

    def rotation(self) -> dict[str, Any]:
        """What the training rotation looks like now (runs, workers, measured seconds a step)."""
        return self.scheduler.stats()

    # -- comparison slots (the Compare tab) ------------------------------------------
    def try_slot(self, session: str) -> int:
        """0 when `session` holds a training slot (now or already); else its place in line (1 = next).

        Raises ServerBusy when every slot is taken and the line is full.
        """
        with self._lock:
            if session in self._active:
                return 0
            free = len(self._active) < max(1, self.settings.max_concurrent_runs)
            first_in_line = not self._waiting or self._waiting[0] == session
            if free and first_in_line:
                if self._waiting and self._waiting[0] == session:
                    self._waiting.popleft()
                self._active.add(session)
                return 0
            if session not in self._waiting:
                if len(self._waiting) >= max(0, self.settings.queue_size):
                    raise ServerBusy(f"The server is full: {len(self._active)} runs are training and "
                                     f"{len(self._waiting)} visitors are waiting. Try again in a minute.")
                self._waiting.append(session)
            return self._waiting.index(session) + 1

    def leave(self, session: str) -> None:
        """Give up the slot or the place in line (idempotent)."""
        with self._lock:
            self._active.discard(session)
            try:
                self._waiting.remove(session)
            except ValueError:
                pass

    def load(self) -> dict[str, int]:
        with self._lock:
            return {"active": len(self._active), "waiting": len(self._waiting),
                    "limit": self.settings.max_concurrent_runs, "visitors": len(self._visitors)}

    # -- caches owned by the registry --------------------------------------------------
    def base_energy_cache(self, model_id: str, fresh: Any) -> Any:
        """The energy cache of `model_id`'s frozen base shared by all its runs; `fresh` (a new
        run's own) becomes that cache when it is the first run on this base."""
        with self._lock:
            return self._base_energies.setdefault(model_id, fresh)

    def claim_compare(self, key: str) -> bool:
        """Mark a live comparison of `key` as running; False if one already is."""
        with self._lock:
            if key in self._comparing:
                return False
            self._comparing.add(key)
            return True

    def end_compare(self, key: str) -> None:
        with self._lock:
            self._comparing.discard(key)

    # -- models --------------------------------------------------------------------
    def allowed_models(self) -> Optional[list[str]]:
        allowed = self.settings.allowed_models
        return None if allowed is None else [m for m in allowed if m not in DEFAULT_MODEL_ALIASES]

    def check_model(self, name: Any) -> str:
        """The model id to load for `name`; ModelNotAllowed when this server does not offer it.

        The default model always; a model in QGOFT_ALLOWED_MODELS always (a folder the operator
        listed too); a local folder only when the server listens on this machine alone or the
        operator opted in (QGOFT_ALLOW_LOCAL_MODELS=1); other hub ids when no allow-list is set.
        """
        text = str(name or "").strip()
        if not text or text in DEFAULT_MODEL_ALIASES:
            return DEFAULT_MODEL_ID
        allowed = self.allowed_models()
        if allowed is not None and text in allowed:
            return text
        if looks_local(text) and not self.settings.local_models_allowed():
            raise ModelNotAllowed("Local folders cannot be loaded as the model on this server (it is open to "
                                  "the network); choose the default model or a Hugging Face model id. "
                                  "The server's operator can allow folders with QGOFT_ALLOW_LOCAL_MODELS=1.")
        if allowed is not None:
            offered = ", ".join([DEFAULT_MODEL_ID, *allowed])
            raise ModelNotAllowed(f"model {text!r} is not offered on this server; choose one of: {offered}")
        return text

    # -- cleanup -------------------------------------------------------------------
    def release(self, session: Optional[str]) -> bool:
        """The visitor left: stop their run, give up their turn and slot, and free their memory."""
        with self._lock:
            visitor = self._visitors.pop(session or "anonymous", None)
        self.leave(session or "anonymous")
        if visitor is None:
            return False
        self._free(visitor)
        return True

    def sweep(self) -> int:
        """Release every visitor idle for too long (see the module docstring); returns how many."""
        with self._lock:
            stale = self._take_idle(self._clock())
        for visitor in stale:
            self._free(visitor)
        return len(stale)

    def start_sweeper(self, every_seconds: float = 60.0) -> threading.Thread:
        """Sweep in the background (API clients that vanish never unload, and may be the last to come)."""
        if self._sweeper is None:
            def loop() -> None:
                while True:
                    time.sleep(every_seconds)
                    try:
                        self.sweep()
                        memory.trim_malloc()
                    except Exception:  # noqa: BLE001 - a sweep that fails is tried again later
                        pass

            self._sweeper = threading.Thread(target=loop, name="idle-sweeper", daemon=True)
            self._sweeper.start()
        return self._sweeper

    def _idle_limit(self, visitor: Visitor) -> float:
        run = visitor.run
        step, target = getattr(run, "step_count", 0), getattr(getattr(run, "config", None), "steps", 0)
        half_way = 0 < step < target
        idle = self.settings.idle_minutes
        minutes = idle if half_way else min(idle, self.settings.finished_idle_minutes)
        return 60.0 * max(1, minutes)

    def _take_idle(self, now: float) -> list[Visitor]:
        stale = [v for v in self._visitors.values() if not v.busy and now - v.last_seen > self._idle_limit(v)]
        for visitor in stale:
            del self._visitors[visitor.session]
            self._active.discard(visitor.session)
        return stale

    def forget_upload(self, visitor: Visitor) -> None:
        """Drop what the visitor's uploaded data put in the engine's caches."""
        keys, visitor.data_keys = visitor.data_keys, set()
        memory.forget_data(keys)

    def _free(self, visitor: Visitor) -> None:
        visitor.stop.set()  # a training loop still running sees this at its next step
        self.cancel_turn(visitor)
        self.forget_upload(visitor)
        visitor.run = None
        visitor.uploaded = None
        if visitor.export_dir is not None:
            shutil.rmtree(visitor.export_dir, ignore_errors=True)
            visitor.export_dir = None
        gc.collect()
        import torch
        # Only where this process already uses CUDA (on ZeroGPU the app's own process never does).
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        memory.trim_malloc()
