"""Fair turns: a fixed pool of worker threads time-slices the steps of every active run.

Each run that is training is a ``Turn``: an iterator whose every ``next()`` does one
quantum of work (one optimiser step, with the evaluation and snapshot that follow it;
the first quantum prepares the run and draws its step-0 views). The ``StepScheduler``
keeps the turns in one rotation and its workers take them round-robin: a turn that has
done its quantum goes to the back of the line. So with K runs active every run gets a
step before any gets a second one, however many visitors pressed Train, and nobody
waits for a whole run to finish before their own moves.

Threads: ``workers`` OS threads (``cores // threads_per_run``, at least one), and the
torch CPU threads of the quanta running at any moment never add up to more than
``cores``. With ``threads_per_run`` unset each quantum takes an equal share of the cores
among the runs in the rotation (a run alone gets them all; with two or more runs each
worker gets ``cores // workers``); a worker waits (at most one quantum) until the
threads it takes are free. A fixed pool also keeps memory flat: one malloc arena and
one OpenMP team per worker, not per visitor.

A turn that raises ends for its visitor only (``Turn.error``); the workers and every
other turn go on. ``cancel`` takes a turn out of the rotation at once (a queued turn is
closed right away in the caller's thread; a running one after its quantum): its place is
free for the others.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any, Callable, Iterator, Optional

QUEUED, RUNNING, PAUSED, ENDED = "queued", "running", "paused", "ended"


class RotationFull(RuntimeError):
    """As many runs as this server admits are in the rotation already."""


def set_torch_threads(n: int) -> None:
    """The default thread setter: the calling worker's torch CPU threads."""
    from qgoft_core.explore.training import configure_cpu_threads
    configure_cpu_threads(n)


class Turn:
    """One run's place in the rotation: `work` advanced one quantum per ``next()``.

    `on_end(turn)` is called once when the turn leaves the rotation for good (finished,
    cancelled or failed), in whichever thread ends it. ``error`` holds the exception that
    ended it, if one did; ``seconds`` is the turn's own compute time (its quanta only, not
    the time it waited for them).
    """

    def __init__(self, work: Iterator[Any], key: str = "", on_end: Optional[Callable[["Turn"], None]] = None):
        self.work = work
        self.key = key
        self.on_end = on_end
        self.state = QUEUED
        self.quanta = 0
        self.seconds = 0.0
        self.threads = 0  # torch threads of its quantum in progress (0 between quanta)
        self.error: Optional[BaseException] = None
        self.cancelled = False
        self.pause_wanted = False
        self.ended = threading.Event()
        self.submitted = time.monotonic()

    @property
    def done(self) -> bool:
        return self.ended.is_set()


class StepScheduler:
    """A fixed pool of workers that round-robins one quantum of each turn in the rotation."""

    def __init__(self, cores: int, threads_per_run: Optional[int] = None, max_turns: int = 64,
                 set_threads: Callable[[int], None] = set_torch_threads, name: str = "turns"):
        self.cores = max(1, int(cores))
        self.fixed_threads = None if not threads_per_run else max(1, min(int(threads_per_run), self.cores))
        self.workers = max(1, self.cores // (self.fixed_threads or 1))
        self.max_turns = max(1, int(max_turns))
        self._set_threads = set_threads
        self._name = name
        self._cond = threading.Condition()
        self._fresh: deque[Turn] = deque()  # not yet had a quantum: served first (their step-0 views)
        self._ready: deque[Turn] = deque()  # the rotation, front = next
        self._running: set[Turn] = set()  # taken by a worker (in a quantum, or about to start one)
        self._paused: set[Turn] = set()
        self._threads_used = 0
        self._peak_threads = 0
        self._quantum_seconds: Optional[float] = None  # moving average of a quantum's wall time
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # -- turns ---------------------------------------------------------------------------
    def submit(self, turn: Turn) -> Turn:
        """Put `turn` into the rotation (its first quantum comes before any run's next step)."""
        with self._cond:
            if self._stopping:
                raise RuntimeError("the scheduler is shut down")
            if self.active() >= self.max_turns:
                raise RotationFull(f"The server is full: {self.active()} runs are training, the most it "
                                   f"takes at once. Try again in a minute, or watch a lesson meanwhile.")
            turn.state = QUEUED
            self._fresh.append(turn)
            self._start_workers()
            self._cond.notify_all()
        return turn

    def cancel(self, turn: Turn) -> None:
        """Take `turn` out of the rotation: closed now if it waits, after its quantum if it runs."""
        with self._cond:
            if turn.done or turn.cancelled:
                return
            turn.cancelled = True
            if turn.state == RUNNING:
                return  # its worker closes it after the quantum
            self._remove(turn)
        self._finish(turn)

    def pause(self, turn: Turn) -> bool:
        """Keep `turn` out of the rotation until ``resume`` (after its quantum, if one runs)."""
        with self._cond:
            if turn.done or turn.cancelled or turn in self._paused:
                return False
            turn.pause_wanted = True
            if turn.state != RUNNING:
                self._remove(turn)
                turn.state = PAUSED
                self._paused.add(turn)
            return True

    def resume(self, turn: Turn) -> bool:
        """Back into the rotation, at its end."""
        with self._cond:
            turn.pause_wanted = False
            if turn not in self._paused:
                return turn.state == RUNNING  # paused and resumed within one quantum: nothing to undo
            self._paused.discard(turn)
            turn.state = QUEUED
            self._ready.append(turn)
            self._cond.notify_all()
            return True

    # -- what visitors are told --------------------------------------------------------------
    def active(self) -> int:
        """Turns in the rotation: waiting or running (paused ones excluded)."""
        with self._cond:
            return len(self._fresh) + len(self._ready) + len(self._running)

    def position(self, turn: Turn) -> int:
        """0 while `turn` runs a quantum; else how many quanta start before its own, plus one."""
        with self._cond:
            if turn in self._running:
                return 0
            line = list(self._fresh) + list(self._ready)
            return line.index(turn) + 1 if turn in line else 0

    def quantum_seconds(self) -> Optional[float]:
        """The measured wall time of one quantum (a moving average); None before the first."""
        with self._cond:
            return self._quantum_seconds

    def wait_estimate(self, turn: Turn) -> Optional[float]:
        """Seconds until `turn`'s next quantum starts, from the measured quantum time; None unknown."""
        per = self.quantum_seconds()
        if per is None:
            return None
        return math.ceil(self.position(turn) / self.workers) * per

    def round_seconds(self) -> Optional[float]:
        """Seconds between two quanta of one run: runs in the rotation / workers x a quantum."""
        per = self.quantum_seconds()
        if per is None:
            return None
        return max(1.0, self.active() / self.workers) * per

    def threads_in_use(self) -> int:
        with self._cond:
            return self._threads_used

    def peak_threads(self) -> int:
        """The most torch threads the quanta running together ever used (never above `cores`)."""
        with self._cond:
            return self._peak_threads

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {"workers": self.workers, "cores": self.cores, "threads_per_run": self.fixed_threads,
                    "active": len(self._fresh) + len(self._ready) + len(self._running),
                    "running": len(self._running), "paused": len(self._paused), "max_turns": self.max_turns,
                    "quantum_seconds": self._quantum_seconds, "peak_threads": self._peak_threads}

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel every turn and stop the workers (tests; a server simply exits)."""
        with self._cond:
            self._stopping = True
            doomed = list(self._fresh) + list(self._ready) + list(self._paused)
            self._fresh.clear()
            self._ready.clear()
            self._paused.clear()
            for turn in doomed:
                turn.cancelled = True
            for turn in self._running:
                turn.cancelled = True
            self._cond.notify_all()
        for turn in doomed:
            self._finish(turn)
        for thread in self._threads:
            thread.join(timeout)

    # -- the workers --------------------------------------------------------------------------
    def _start_workers(self) -> None:
        while len(self._threads) < self.workers:  # lazily: a registry that never trains starts none
            thread = threading.Thread(target=self._work, daemon=True,
                                      name=f"{self._name}-worker-{len(self._threads)}")
            self._threads.append(thread)
            thread.start()

    def _share(self) -> int:
        """Torch threads for the next quantum: fixed, or the cores shared by the runs in the rotation."""
        if self.fixed_threads:
            return self.fixed_threads
        runs = len(self._fresh) + len(self._ready) + len(self._running)
        return max(1, self.cores // max(1, min(self.workers, runs)))

    def _take(self) -> Optional[tuple[Turn, int]]:
        with self._cond:
            while True:
                if self._stopping:
                    return None
                line = self._fresh if self._fresh else self._ready
                if line:
                    turn = line.popleft()
                    break
                self._cond.wait()
            turn.state = RUNNING
            self._running.add(turn)
            # Threads: never more than `cores` in use by the quanta running together.
            while self.cores - self._threads_used < 1 and not self._stopping:
                self._cond.wait()
            threads = max(1, min(self._share(), self.cores - self._threads_used))
            self._threads_used += threads
            self._peak_threads = max(self._peak_threads, self._threads_used)
            turn.threads = threads
            return turn, threads

    def _work(self) -> None:
        current = 0
        while True:
            taken = self._take()
            if taken is None:
                return
            turn, threads = taken
            if turn.cancelled:
                self._after(turn, finished=True, seconds=None)
                continue
            if threads != current:
                try:
                    self._set_threads(threads)
                    current = threads
                except Exception:  # noqa: BLE001 - a thread setting is an optimisation, never fatal
                    pass
            started = time.perf_counter()
            finished = False
            try:
                next(turn.work)
            except StopIteration:
                finished = True
            except BaseException as exc:  # noqa: BLE001 - one visitor's fault never stops the workers
                turn.error = exc
                finished = True
            seconds = time.perf_counter() - started
            turn.seconds += seconds
            if not finished or turn.error is not None:
                turn.quanta += 1  # the call that only found the work finished is no quantum
            self._after(turn, finished, seconds)

    def _after(self, turn: Turn, finished: bool, seconds: Optional[float]) -> None:
        with self._cond:
            self._running.discard(turn)
            self._threads_used -= turn.threads
            turn.threads = 0
            if seconds is not None and turn.quanta > 1:  # a first quantum (the run's setup) is no step
                old = self._quantum_seconds
                self._quantum_seconds = seconds if old is None else 0.8 * old + 0.2 * seconds
            if finished or turn.cancelled or self._stopping:
                end = True
            elif turn.pause_wanted:
                end = False
                turn.state = PAUSED
                self._paused.add(turn)
            else:
                end = False
                turn.state = QUEUED
                self._ready.append(turn)
            self._cond.notify_all()
        if end:
            self._finish(turn)

    def _remove(self, turn: Turn) -> None:
        for line in (self._fresh, self._ready):
            try:
                line.remove(turn)
            except ValueError:
                pass
        self._paused.discard(turn)

    @staticmethod
    def _finish(turn: Turn) -> None:
        """Close the turn's work (its cleanup runs here), then tell its owner. Never raises."""
        if turn.done:
            return
        turn.state = ENDED
        close = getattr(turn.work, "close", None)
        if close is not None:
            try:
                close()
            except BaseException as exc:  # noqa: BLE001
                turn.error = turn.error or exc
        turn.ended.set()
        if turn.on_end is not None:
            try:
                turn.on_end(turn)
            except Exception:  # noqa: BLE001
                pass
