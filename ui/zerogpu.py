"""Training on a ZeroGPU Space: short GPU chunks that hand the run's state back.

On ZeroGPU a GPU exists only inside functions decorated with
``@spaces.GPU(duration=...)``; such a function runs in another (forked)
process, its arguments and results are pickled, and whatever it changes in
objects is lost when it returns. So the visitor's run lives on the CPU in the
app's process, and each chunk of steps is a pure function of picklable data:
``train_chunk(config, task, state, steps) -> (new state, history)``. It builds
(or reuses, in the GPU process) a run with the same settings, loads the state,
trains on the GPU and returns the trained tensors, the optimiser and data-order
state and what the chunk recorded (its `RunHistory` in the history's one JSON
form, every bit kept); the app reads that back and appends it to its own run.

Without the ``spaces`` package or outside a ZeroGPU Space (``SPACES_ZERO_GPU``
unset) training runs in-process as usual, on CUDA when there is one.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any, Callable, Iterator, Optional

import torch

from ui.settings import Settings

_ENV = Settings.from_env()  # the one reading of the environment (ui/settings.py)
CHUNK_STEPS = _ENV.gpu_chunk_steps
CHUNK_SECONDS = _ENV.gpu_chunk_seconds


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space with the `spaces` package installed."""
    if not _ENV.zero_gpu:
        return False
    try:
        import spaces  # noqa: F401
    except ImportError:
        return False
    return True


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


def capture_state(run) -> dict[str, Any]:
    """Everything an optimiser step changes, as CPU tensors and plain values (picklable)."""
    cpu = torch.device("cpu")
    return {
        "trainable": _to_device(run.tuned.trainable_state(), cpu),
        "optimizer": _to_device(run.optimizer.state_dict(), cpu),
        "generator": run.generator.get_state(),
        "order": list(run._order),
        "step_count": run.step_count,
        "stopped_reason": run.stopped_reason,
    }


def restore_state(run, state: dict[str, Any]) -> None:
    """Load a captured state into `run` (tensors go to the run's device)."""
    run.tuned.load_trainable_state(_to_device(state["trainable"], run.device))
    run.optimizer.load_state_dict(state["optimizer"])  # AdamW moves its state to the params' device
    run.generator.set_state(state["generator"])
    run._order = list(state["order"])
    run.step_count = state["step_count"]
    run.stopped_reason = state["stopped_reason"]


def _run_key(config: dict, task) -> str:
    texts = hashlib.sha256("\x1f".join(task.train_texts + task.test_texts).encode()).hexdigest()
    return json.dumps(config, sort_keys=True, default=str) + texts


_worker_runs: dict[str, Any] = {}  # in the GPU process: the run of the last chunk, reused


def train_chunk(config: dict, task, state: dict, steps: int) -> tuple[dict, dict]:
    """The GPU function: `steps` optimiser steps from `state` (made by `capture_state`).

    Returns (new state, history): the history is ``RunHistory.to_dict(digits=None)``
    of this chunk's records only (exact, plain JSON data: nothing of this process's
    classes has to be unpickled by the caller). Changes nothing its caller can see.
    """
    from qgoft_core.explore.history import RunHistory
    from qgoft_core.explore.training import RunConfig, TrainingRun

    key = _run_key(config, task)
    run = _worker_runs.get(key)
    if run is None:
        _worker_runs.clear()  # one run per GPU process: the chunks of one visitor follow each other
        run = _worker_runs[key] = TrainingRun(RunConfig(**{**config, "device": "auto"}), task=task)
    restore_state(run, state)
    run.history = RunHistory()  # only this chunk's records go back (step 0 also evaluates first)
    for _ in run.run(steps=steps):
        pass
    return capture_state(run), run.history.to_dict(digits=None)


class ChunkedTraining:
    """Train a run in chunks through a GPU function, loading each chunk's result back into it."""

    def __init__(self, chunk: Callable[..., tuple[dict, dict]], chunk_steps: int = CHUNK_STEPS):
        self._chunk = chunk
        self.chunk_steps = max(1, int(chunk_steps))

    def run(self, run, steps: Optional[int] = None) -> Iterator[tuple[str, dict]]:
        """Like ``run.run(steps)``: yields ("step" | "eval" | "snapshot", record) in order."""
        from qgoft_core.explore.history import RunHistory
        target = run.step_count + steps if steps is not None else run.config.steps
        config = replace(run.config, device="cpu").to_dict()
        fresh = run.step_count == 0 and not run.history.evals
        while fresh or run.step_count < target:
            n = min(self.chunk_steps, max(1, target - run.step_count))
            # The state always travels, also at step 0: the GPU process's own run may have
            # been initialised differently (LoRA draws its init from the global RNG).
            new_state, shipped = self._chunk(config, run.task, capture_state(run), n)
            restore_state(run, new_state)
            for kind, record in RunHistory.from_json(shipped).events():
                run.history.add(kind, record)
                yield kind, record
            fresh = False


def gpu_chunk_function() -> Optional[Callable]:
    """`train_chunk` under ``@spaces.GPU`` on ZeroGPU, else None (train in-process)."""
    if not on_zero_gpu():
        return None
    import spaces
    return spaces.GPU(duration=CHUNK_SECONDS)(train_chunk)


# Decorated once at import, as ZeroGPU expects of its GPU functions.
_GPU_CHUNK = gpu_chunk_function()


def run_device() -> str:
    """Where the app builds runs: the CPU on ZeroGPU (the GPU is only lent per chunk), else auto."""
    return "cpu" if _GPU_CHUNK is not None else "auto"


def training_events(run, steps: Optional[int] = None) -> Iterator[tuple[str, dict]]:
    """The app's one entry point: chunked on ZeroGPU, in-process everywhere else."""
    if _GPU_CHUNK is not None:
        return ChunkedTraining(_GPU_CHUNK).run(run, steps)
    return run.run(steps)
