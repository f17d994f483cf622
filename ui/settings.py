"""Every setting the app takes from the environment, read once (``Settings.from_env()``).

``app.py`` reads them when it starts and hands the one ``Settings`` to every tab
through the ``AppContext``; nothing else in the app layer reads ``os.environ``
(ui/zerogpu.py still reads its two chunk settings at import: see
``gpu_chunk_steps``). ``Settings()`` without arguments is the documented
defaults, whatever the environment says; tests build theirs with
``dataclasses.replace(Settings(), ...)`` or ``Settings.from_env()``.

| variable | field | default |
| --- | --- | --- |
| ``QGOFT_MAX_STEPS`` | ``max_steps`` | 2000 |
| ``QGOFT_MAX_SECONDS`` | ``max_seconds`` | 600 |
| ``QGOFT_MAX_CONCURRENT_RUNS`` | ``max_concurrent_runs`` | 2 |
| ``QGOFT_QUEUE_SIZE`` | ``queue_size`` | 16 |
| ``QGOFT_ALLOWED_MODELS`` | ``allowed_models`` | any model |
| ``QGOFT_MAX_UPLOAD_MB`` | ``max_upload_mb`` | 20 |
| ``QGOFT_IDLE_MINUTES`` | ``idle_minutes`` | 30 |
| ``QGOFT_PRELOAD`` | ``preload`` | on (``0`` turns it off) |
| ``QGOFT_THREADS``, else ``CPU_CORES`` | ``cpu_threads`` | every core (at most 8) |
| ``QGOFT_GPU_CHUNK_STEPS`` | ``gpu_chunk_steps`` | 20 |
| ``QGOFT_GPU_CHUNK_SECONDS`` | ``gpu_chunk_seconds`` | 60 |
| ``SPACES_ZERO_GPU`` | ``zero_gpu`` | off |

Host and port (``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``) are Gradio's own;
``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` belong to the model loader.
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


def _threads(env: Mapping[str, str]) -> Optional[int]:
    raw = env.get("QGOFT_THREADS") or env.get("CPU_CORES")  # Spaces set CPU_CORES
    try:
        return max(1, int(float(raw))) if raw else None
    except ValueError:
        return None


def _names(env: Mapping[str, str], name: str) -> Optional[tuple[str, ...]]:
    raw = env.get(name, "").strip()
    return tuple(part.strip() for part in raw.split(",") if part.strip()) or None


@dataclass(frozen=True)
class Settings:
    """Limits and switches for hosted use (table above). Frozen: one value shared by every tab."""

    max_steps: int = 2000  # optimiser steps one run may ask for (passed to RunConfig.max_steps)
    max_seconds: int = 600  # training time of one run; it stops at the cap
    max_concurrent_runs: int = 2  # runs training at once (Train and Compare together)
    queue_size: int = 16  # visitors waiting for a slot before "server full"
    # None: any hub id or local folder; else only these (the default model is always allowed).
    allowed_models: Optional[tuple[str, ...]] = None
    max_upload_mb: int = 20  # largest upload (a data file or an adapter)
    # A visitor who has not been heard from for this long loses their run (API clients never
    # close a tab, so unload alone cannot free their memory).
    idle_minutes: int = 30
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
            max_concurrent_runs=_int(env, "QGOFT_MAX_CONCURRENT_RUNS", d.max_concurrent_runs),
            queue_size=_int(env, "QGOFT_QUEUE_SIZE", d.queue_size),
            allowed_models=_names(env, "QGOFT_ALLOWED_MODELS"),
            max_upload_mb=_int(env, "QGOFT_MAX_UPLOAD_MB", d.max_upload_mb),
            idle_minutes=_int(env, "QGOFT_IDLE_MINUTES", d.idle_minutes),
            preload=env.get("QGOFT_PRELOAD", "1") != "0",
            cpu_threads=_threads(env),
            gpu_chunk_steps=_int(env, "QGOFT_GPU_CHUNK_STEPS", d.gpu_chunk_steps),
            gpu_chunk_seconds=_int(env, "QGOFT_GPU_CHUNK_SECONDS", d.gpu_chunk_seconds),
            zero_gpu=bool(env.get("SPACES_ZERO_GPU")),
        )

    def cores(self) -> int:
        """The CPU threads all runs share: `cpu_threads`, else every core of the machine."""
        return self.cpu_threads or os.cpu_count() or 1
