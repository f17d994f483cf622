"""What every tab is built with: the settings and the objects shared app-wide (never per-visitor state).

Dependencies go one way: context -> runs -> settings. ``AppContext`` owns the one
``RunRegistry`` of the app, which in turn owns every per-visitor object and the
app layer's caches (see ui/runs.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ui.runs import RunRegistry
from ui.settings import Settings


@dataclass
class AppContext:
    settings: Settings = field(default_factory=Settings.from_env)
    # The gr.Blocks being built, for app-wide events (demo.load / demo.unload); set by app.py.
    demo: Any = None
    # The app's gr.Tabs, so a shared link can open a given tab; set by app.py.
    tabs: Any = None
    # The per-visitor run registry (one per app); made from `settings` unless given.
    runs: Optional[RunRegistry] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.runs is None:
            self.runs = RunRegistry(self.settings)
