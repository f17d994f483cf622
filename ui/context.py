"""Settings and shared objects every tab can read (never per-visitor state)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name, "").strip()
    return [part.strip() for part in raw.split(",") if part.strip()] or None


@dataclass(frozen=True)
class AppSettings:
    """Limits for hosted use, all from environment variables (see README)."""

    max_steps: int = field(default_factory=lambda: _env_int("QGOFT_MAX_STEPS", 2000))
    max_seconds: int = field(default_factory=lambda: _env_int("QGOFT_MAX_SECONDS", 600))
    max_concurrent_runs: int = field(default_factory=lambda: _env_int("QGOFT_MAX_CONCURRENT_RUNS", 2))
    queue_size: int = field(default_factory=lambda: _env_int("QGOFT_QUEUE_SIZE", 16))
    # None: any hub id or local folder; else only these (the default model is always allowed).
    allowed_models: list[str] | None = field(default_factory=lambda: _env_list("QGOFT_ALLOWED_MODELS"))
    max_upload_mb: int = field(default_factory=lambda: _env_int("QGOFT_MAX_UPLOAD_MB", 20))


@dataclass
class AppContext:
    settings: AppSettings = field(default_factory=AppSettings)
