"""The Train tab's engine side: what its buttons do, without any Gradio layout.

- ``controls``: the settings the page sends (``Controls``) and what they select (task, layers).
- ``session``: a visitor's run: prepare (reuse or build), live settings, warm-up (and the pinned caches).
- ``stream``: Train: the run takes turns in the server's rotation (ui/scheduler.py), a generator
  watches it and draws (``Throttle``), and tells a waiting visitor their place and the measured wait.
- ``handlers``: the one-shot actions Pause, Step +1, Reset, New seed, and a data upload; what pressing
  Train would do after a change of settings (the new-run notice).
- ``earlier``: the visitor's last runs, kept (their curves and numbers, not their models) to be drawn
  beside the current one.
- ``teacher``: teacher mode as the student sees it: the fixed settings, no hints about hidden controls.
- ``panels`` / ``events``: the tab's layout builders and its event wiring (Gradio).

Every action takes the registry, the visitor's session and the control values, and
returns (or, for training, yields) a dict of view values keyed by element id
(``ui.train_views``). ui/train_tab.py composes the panels and wires them.
"""
