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

At most ``max_concurrent_runs`` visitors train at the same time; the next
``queue_size`` wait in line (first come, first served) and see their place;
beyond that a visitor is told the server is full. Closing the tab
(``demo.unload``) or being idle for ``idle_minutes`` stops the run and frees
its memory.
"""
from __future__ import annotations

import gc
import hashlib
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from qgoft_core.explore.models import DEFAULT_MODEL_ALIASES, DEFAULT_MODEL_ID

if TYPE_CHECKING:
    from qgoft_core.explore.data.tasks import TextTask
    from qgoft_core.explore.training import TrainingRun
    from ui.settings import Settings


class ServerBusy(RuntimeError):
    """Every training slot is taken and the waiting line is full."""


class ModelNotAllowed(ValueError):
    """A model this server does not offer (QGOFT_ALLOWED_MODELS)."""


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

    # -- training slots ------------------------------------------------------------
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
        """The model id to load for `name`; ModelNotAllowed when the allow-list excludes it."""
        text = str(name or "").strip()
        if not text or text in DEFAULT_MODEL_ALIASES:
            return DEFAULT_MODEL_ID
        allowed = self.allowed_models()
        if allowed is not None and text not in allowed:
            offered = ", ".join([DEFAULT_MODEL_ID, *allowed])
            raise ModelNotAllowed(f"model {text!r} is not offered on this server; choose one of: {offered}")
        return text

    # -- cleanup -------------------------------------------------------------------
    def release(self, session: Optional[str]) -> bool:
        """The visitor left: stop their run, give up their slot and free their memory."""
        with self._lock:
            visitor = self._visitors.pop(session or "anonymous", None)
        self.leave(session or "anonymous")
        if visitor is None:
            return False
        self._free(visitor)
        return True

    def sweep(self) -> int:
        """Release every visitor idle for longer than `idle_minutes`; returns how many."""
        with self._lock:
            stale = self._take_idle(self._clock())
        for visitor in stale:
            self._free(visitor)
        return len(stale)

    def _take_idle(self, now: float) -> list[Visitor]:
        limit = 60.0 * max(1, self.settings.idle_minutes)
        stale = [v for v in self._visitors.values() if not v.busy and now - v.last_seen > limit]
        for visitor in stale:
            del self._visitors[visitor.session]
            self._active.discard(visitor.session)
        return stale

    @staticmethod
    def _free(visitor: Visitor) -> None:
        visitor.stop.set()  # a training loop still running sees this at its next step
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
