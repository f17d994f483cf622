"""Settings and shared objects every tab can read (never per-visitor state)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from ui.runs import RunRegistry


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
    # A visitor who has not been heard from for this long loses their run (API clients never
    # close a tab, so unload alone cannot free their memory).
    idle_minutes: int = field(default_factory=lambda: _env_int("QGOFT_IDLE_MINUTES", 30))


@dataclass
class AppContext:
    settings: AppSettings = field(default_factory=AppSettings)
    # The gr.Blocks being built, for app-wide events (demo.load / demo.unload); set by app.py.
    demo: Any = None
    # The app's gr.Tabs, so a shared link can open a given tab; set by app.py.
    tabs: Any = None
    _runs: Optional["RunRegistry"] = field(default=None, repr=False)

    @property
    def runs(self) -> "RunRegistry":
        """The per-visitor run registry (one per app), created on first use."""
        if self._runs is None:
            from ui.runs import RunRegistry
            self._runs = RunRegistry(self.settings)
        return self._runs
