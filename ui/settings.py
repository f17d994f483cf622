"""Every setting the app takes from the environment, read once (``Settings.from_env()``).

``app.py`` reads them when it starts and hands the one ``Settings`` to every tab
through the ``AppContext``; nothing else in the app layer reads ``os.environ``
(ui/zerogpu.py takes its chunk settings from ``Settings.from_env()`` at import).
``Settings()`` without arguments is the documented
defaults, whatever the environment says; tests build theirs with
``dataclasses.replace(Settings(), ...)`` or ``Settings.from_env()``.

| variable | field | default |
| --- | --- | --- |
| ``QGOFT_MAX_STEPS`` | ``max_steps`` | 2000 |
| ``QGOFT_MAX_SECONDS`` | ``max_seconds`` | 600 |
| ``QGOFT_MAX_ACTIVE_RUNS`` | ``max_active_runs`` | 64 |
| ``QGOFT_THREADS_PER_RUN`` | ``threads_per_run`` | auto (a run alone: every core; more: one each) |
| ``QGOFT_MAX_CONCURRENT_RUNS`` | ``max_concurrent_runs`` | 2 |
| ``QGOFT_QUEUE_SIZE`` | ``queue_size`` | 16 |
| ``QGOFT_ALLOWED_MODELS`` | ``allowed_models`` | any hub id |
| ``QGOFT_ALLOW_LOCAL_MODELS`` | ``allow_local_models`` | off (``1`` turns it on) |
| ``GRADIO_SERVER_NAME`` | ``server_name`` | unset (localhost) |
| ``QGOFT_MAX_UPLOAD_MB`` | ``max_upload_mb`` | 20 |
| ``QGOFT_EVAL_SAMPLE`` | ``eval_sample`` | 256 |
| ``QGOFT_IDLE_MINUTES`` | ``idle_minutes`` | 30 |
| ``QGOFT_FINISHED_IDLE_MINUTES`` | ``finished_idle_minutes`` | 10 |
| ``QGOFT_MODEL_CACHE_MB`` | ``model_cache_mb`` | 2048 |
| ``QGOFT_DATA_CACHE_MB`` | ``data_cache_mb`` | 64 |
| ``QGOFT_EMBEDDING_CACHE_MB`` | ``embedding_cache_mb`` | 32 |
| ``QGOFT_VIEW_CACHE_MB`` | ``view_cache_mb`` | 8 |
| ``QGOFT_MALLOC_ARENAS`` | ``malloc_arenas`` | 2 (``0``: glibc's own) |
| ``QGOFT_PRELOAD`` | ``preload`` | on (``0`` turns it off) |
| ``QGOFT_THREADS``, else ``CPU_CORES`` | ``cpu_threads`` | every core (at most 8 per step) |
| ``QGOFT_GPU_CHUNK_STEPS`` | ``gpu_chunk_steps`` | 20 |
| ``QGOFT_GPU_CHUNK_SECONDS`` | ``gpu_chunk_seconds`` | 60 |
| ``SPACES_ZERO_GPU`` | ``zero_gpu`` | off |

Host and port (``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``) are Gradio's own; the
app reads ``GRADIO_SERVER_NAME`` only to know whether it is bound to this machine alone.
``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` belong to the model loader.

What they mean:

- Training turns (ui/scheduler.py). Every visitor who presses Train joins one rotation;
  ``cpu_threads // threads_per_run`` worker threads (at least one) take one optimiser step
  of each run in turn, and the torch threads of the steps running together never exceed
  ``cpu_threads``. ``QGOFT_MAX_ACTIVE_RUNS`` bounds the runs in the rotation (beyond it a
  visitor is told the server is full); ``QGOFT_THREADS_PER_RUN`` fixes the torch threads of
  each step (unset: a run alone gets every core, with more runs each worker gets its share).
- ``QGOFT_MAX_SECONDS`` counts a run's own step time, not the time it waits for its turn.
- ``QGOFT_MAX_CONCURRENT_RUNS`` / ``QGOFT_QUEUE_SIZE`` now bound only live comparisons (the
  Compare tab), which still train in slots of their own.
- Models: hub ids follow ``QGOFT_ALLOWED_MODELS`` (unset: any). A visitor may type a local
  folder as the model only when the server is bound to this machine (``GRADIO_SERVER_NAME``
  unset, ``127.0.0.1``, ``localhost`` or ``::1``) or the operator sets
  ``QGOFT_ALLOW_LOCAL_MODELS=1``; a folder in ``QGOFT_ALLOWED_MODELS`` is always allowed.
  The offline default model always works.
- ``QGOFT_EVAL_SAMPLE``: live held-out accuracy and loss use a fixed sample of at most this
  many held-out examples per data set (spread evenly over the split), so a big upload costs
  no longer evaluations; the page says so.
- Memory. A visitor's run, uploaded data (its tokens and base-model embeddings) and exports
  are freed when the tab closes, or after ``QGOFT_FINISHED_IDLE_MINUTES`` without a word
  once nothing trains (``QGOFT_IDLE_MINUTES`` bounds the rest; API clients never close a
  tab). The engine's caches (qgoft_core/explore/caches.py) get their byte budgets from
  ``QGOFT_MODEL_CACHE_MB`` (loaded base models; the default model is pinned),
  ``QGOFT_DATA_CACHE_MB`` (tokenised splits) and ``QGOFT_EMBEDDING_CACHE_MB`` (the base
  model's embeddings of held-out samples); the built-in tasks on the default model are
  pinned. ``QGOFT_MALLOC_ARENAS`` caps glibc's malloc arenas (``mallopt(M_ARENA_MAX)``,
  glibc only) so that threads do not each keep their own heap.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name, default))
    except (TypeError, ValueError):
        return default


def _threads(env: Mapping[str, str], name: str = "") -> Optional[int]:
    raw = env.get(name) if name else (env.get("QGOFT_THREADS") or env.get("CPU_CORES"))  # Spaces set CPU_CORES
    try:
        return max(1, int(float(raw))) if raw else None
    except ValueError:
        return None


def _names(env: Mapping[str, str], name: str) -> Optional[tuple[str, ...]]:
    raw = env.get(name, "").strip()
    return tuple(part.strip() for part in raw.split(",") if part.strip()) or None


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Settings:
    """Limits and switches for hosted use (table above). Frozen: one value shared by every tab."""

    max_steps: int = 2000  # optimiser steps one run may ask for (passed to RunConfig.max_steps)
    max_seconds: int = 600  # training time of one run; it stops at the cap
    max_active_runs: int = 64  # runs in the training rotation at once (ui/scheduler.py)
    threads_per_run: Optional[int] = None  # torch threads of one step; None: the cores shared out
    max_concurrent_runs: int = 2  # live comparisons (Compare tab) training at once
    queue_size: int = 16  # visitors waiting for a comparison slot before "server full"
    # None: any hub id; else only these (the default model is always allowed). Local folders
    # also need `local_models_allowed()`, unless listed here.
    allowed_models: Optional[tuple[str, ...]] = None
    allow_local_models: bool = False  # QGOFT_ALLOW_LOCAL_MODELS=1: folders even when hosted
    server_name: Optional[str] = None  # GRADIO_SERVER_NAME: where the server listens
    max_upload_mb: int = 20  # largest upload (a data file or an adapter)
    eval_sample: int = 256  # held-out examples of a live evaluation, at most (a fixed sample)
    # A visitor who has not been heard from for this long loses their run (API clients never
    # close a tab, so unload alone cannot free their memory); sooner when nothing trains.
    idle_minutes: int = 30
    finished_idle_minutes: int = 10
    model_cache_mb: int = 2048  # loaded base models (the default model is pinned)
    data_cache_mb: int = 64  # tokenised splits
    embedding_cache_mb: int = 32  # base-model embeddings of held-out samples
    view_cache_mb: int = 8  # Train's step-0 charts, drawn once for every run that starts alike
    malloc_arenas: int = 2  # glibc malloc arenas (0: leave glibc's default)
    preload: bool = True  # load the default model and warm its caches when the app starts
    cpu_threads: Optional[int] = None  # torch CPU threads of all runs together; None: every core
    # ZeroGPU Spaces: steps per GPU chunk and the duration each chunk asks for. ui/zerogpu.py
    # still reads these two (and SPACES_ZERO_GPU) itself at import, with the same defaults.
    gpu_chunk_steps: int = 20
    gpu_chunk_seconds: int = 60
    zero_gpu: bool = False

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Settings":
        """The settings the environment gives (`env`, default ``os.environ``); a value that is
        not a number keeps its default."""
        env = os.environ if env is None else env
        d = cls()
        return cls(
            max_steps=_int(env, "QGOFT_MAX_STEPS", d.max_steps),
            max_seconds=_int(env, "QGOFT_MAX_SECONDS", d.max_seconds),
            max_active_runs=_int(env, "QGOFT_MAX_ACTIVE_RUNS", d.max_active_runs),
            threads_per_run=_threads(env, "QGOFT_THREADS_PER_RUN"),
            max_concurrent_runs=_int(env, "QGOFT_MAX_CONCURRENT_RUNS", d.max_concurrent_runs),
            queue_size=_int(env, "QGOFT_QUEUE_SIZE", d.queue_size),
            allowed_models=_names(env, "QGOFT_ALLOWED_MODELS"),
            allow_local_models=env.get("QGOFT_ALLOW_LOCAL_MODELS", "0").strip().lower() in ("1", "true", "yes"),
            server_name=env.get("GRADIO_SERVER_NAME") or None,
            max_upload_mb=_int(env, "QGOFT_MAX_UPLOAD_MB", d.max_upload_mb),
            eval_sample=_int(env, "QGOFT_EVAL_SAMPLE", d.eval_sample),
            idle_minutes=_int(env, "QGOFT_IDLE_MINUTES", d.idle_minutes),
            finished_idle_minutes=_int(env, "QGOFT_FINISHED_IDLE_MINUTES", d.finished_idle_minutes),
            model_cache_mb=_int(env, "QGOFT_MODEL_CACHE_MB", d.model_cache_mb),
            data_cache_mb=_int(env, "QGOFT_DATA_CACHE_MB", d.data_cache_mb),
            embedding_cache_mb=_int(env, "QGOFT_EMBEDDING_CACHE_MB", d.embedding_cache_mb),
            view_cache_mb=_int(env, "QGOFT_VIEW_CACHE_MB", d.view_cache_mb),
            malloc_arenas=_int(env, "QGOFT_MALLOC_ARENAS", d.malloc_arenas),
            preload=env.get("QGOFT_PRELOAD", "1") != "0",
            cpu_threads=_threads(env),
            gpu_chunk_steps=_int(env, "QGOFT_GPU_CHUNK_STEPS", d.gpu_chunk_steps),
            gpu_chunk_seconds=_int(env, "QGOFT_GPU_CHUNK_SECONDS", d.gpu_chunk_seconds),
            zero_gpu=bool(env.get("SPACES_ZERO_GPU")),
        )

    def cores(self) -> int:
        """The CPU threads all runs share: `cpu_threads`, else every core of the machine."""
        return self.cpu_threads or os.cpu_count() or 1

    def bound_to_localhost(self) -> bool:
        """Whether the server listens on this machine only (Gradio's default when unset)."""
        return (self.server_name or "127.0.0.1").strip().strip("[]").lower() in LOCAL_HOSTS

    def local_models_allowed(self) -> bool:
        """Whether a visitor may load a folder of this server as the model."""
        return self.allow_local_models or self.bound_to_localhost()
