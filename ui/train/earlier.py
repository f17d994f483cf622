"""A visitor's earlier runs, kept to compare with the current one ("GOFT, then qGOFT").

When a trained run is replaced (other settings, Reset, New seed) it is kept here, so the
new run is drawn beside it instead of wiping it off the charts. Only what draws it is kept:
its ``qgoft_core.viz.training_charts.EarlierRun`` (held-out loss and accuracy, and the median
layer's orthogonality deviation and energy drift per snapshot) and one row of numbers; never
its model, optimiser or the snapshots' arrays. A few kB a run, the last ``KEEP`` per visitor,
on the visitor, so they go when the visitor does (``RunRegistry.release``).

No Gradio here: ``ui.train_views`` draws what this keeps.
"""
from __future__ import annotations

import math
import threading
import warnings
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np

from qgoft_core.explore.registry import has_penalty, method_label
from qgoft_core.viz.style import ENERGY_ROUNDING, ORTH_TOLERANCE
from qgoft_core.viz.training_charts import EARLIER_STYLES, EarlierRun, earlier_run

KEEP = len(EARLIER_STYLES)  # earlier runs kept per visitor: the last two (one line style each)
STYLE_NAMES = ("grey dotted", "light grey dash-dot")  # how EARLIER_STYLES look, in the same order
_CREATE = threading.Lock()


@dataclass(frozen=True)
class KeptRun:
    """An earlier run: its number on this page, its settings and final numbers, its lines."""

    number: int  # "run 1", "run 2", ... in the order this visitor trained them
    method: str
    settings: str  # "sentiment · lr 0.002 · λ 0.01 · seed 0"
    step: int
    target: int
    accuracy: Optional[float]  # the last held-out accuracy (0..1)
    orth_dev: Optional[float]  # median over the layers at the last snapshot
    he_drift: Optional[float]  # median |drift| over the layers at the last snapshot
    curves: EarlierRun

    @property
    def name(self) -> str:
        return f"run {self.number} · {method_label(self.method, short=True)}"


class RunShelf:
    """The earlier runs of one visitor, newest first, at most ``KEEP``; safe across threads
    (the training stream draws them while a button may keep or forget one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: deque[KeptRun] = deque(maxlen=KEEP)
        self.number = 1  # the number the current (next kept) run gets

    def runs(self) -> list[KeptRun]:
        with self._lock:
            return list(self._runs)

    def curves(self) -> list[EarlierRun]:
        """Their lines, styled by age: the newest earlier run dotted grey, the one before lighter."""
        return [replace(k.curves, color=color, dash=dash)
                for k, (color, dash) in zip(self.runs(), EARLIER_STYLES)]

    def keep(self, run: Any) -> tuple[Optional[KeptRun], Optional[KeptRun]]:
        """Keep `run` (if it trained at all) before it is replaced: (kept, the one that no longer fits)."""
        if run is None or not getattr(run, "step_count", 0):
            return None, None
        with self._lock:
            kept = summarise(run, self.number)
            dropped = self._runs[-1] if len(self._runs) == KEEP else None
            self._runs.appendleft(kept)
            self.number += 1
            return kept, dropped

    def clear(self) -> None:
        with self._lock:
            self._runs.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)


def shelf(visitor: Any) -> RunShelf:
    """The visitor's shelf of earlier runs (made on first use; it lives and goes with the visitor)."""
    found = visitor.earlier
    if found is None:
        with _CREATE:
            found = visitor.earlier
            if found is None:
                found = visitor.earlier = RunShelf()
    return found


# -- what a run is, in one row -----------------------------------------------------------------
def _median(values: list[float]) -> Optional[float]:
    array = np.asarray(values, dtype=float)
    if not np.isfinite(array).any():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmedian(array))


def settings_text(config: Any) -> str:
    """The settings that tell two runs apart, short: task, learning rate, λ (qGOFT), scaling, batch, seed."""
    parts = [str(config.task), f"lr {config.resolved_lr():g}"]
    if has_penalty(config.method):
        parts.append(f"λ {float(config.reg_lambda):g}")
    if config.scaling:
        parts.append(f"{config.scaling} scaling")
    parts += [f"batch {config.batch_size}", f"seed {config.seed}"]
    return " · ".join(parts)


def last_numbers(run: Any) -> dict[str, Optional[float]]:
    """The last held-out accuracy, and the median layer's orthogonality deviation and |energy drift|."""
    history = run.history
    accuracy = history.evals[-1]["accuracy"] if history.evals else None
    layers = history.snapshots[-1]["layers"].values() if history.snapshots else []
    layers = list(layers)
    return {"accuracy": accuracy if accuracy is None or math.isfinite(accuracy) else None,
            "orth_dev": _median([layer.get("orth_dev", math.nan) for layer in layers]),
            "he_drift": _median([abs(layer.get("he_drift", math.nan)) for layer in layers])}


def summarise(run: Any, number: int) -> KeptRun:
    """What is kept of `run`: its row and its comparison lines (not its model)."""
    method = run.config.method
    label = f"run {number} · {method_label(method, short=True)}"
    numbers = last_numbers(run)
    return KeptRun(number=number, method=method, settings=settings_text(run.config), step=run.step_count,
                   target=run.config.steps, accuracy=numbers["accuracy"], orth_dev=numbers["orth_dev"],
                   he_drift=numbers["he_drift"],
                   curves=earlier_run(label, list(run.history.evals), list(run.history.snapshots)))


# -- what the page says about them ---------------------------------------------------------------
def _number(value: Optional[float], threshold: float, within: str) -> str:
    if value is None:
        return "–"
    return f"{value:.1e}" + (f" ({within})" if value <= threshold else "")


def _row(name: str, settings: str, step: int, target: int, numbers: dict[str, Optional[float]]) -> str:
    accuracy = numbers["accuracy"]
    cells = [name, settings, f"{step}/{target}", "–" if accuracy is None else f"{100 * accuracy:.1f}%",
             _number(numbers["orth_dev"], ORTH_TOLERANCE, "within tolerance"),
             _number(numbers["he_drift"], ENERGY_ROUNDING, "rounding")]
    return "| " + " | ".join(cells) + " |"


def table_markdown(run: Any, current: int, kept: list[KeptRun]) -> str:
    """The current run and the kept ones as a small table; "" when nothing is kept."""
    if not kept:
        return ""
    before = "the run before it" if len(kept) == 1 else f"the {len(kept)} runs before it"
    lines = [f"**Your runs side by side**: the current run and {before}, drawn in grey in the loss, "
             "orthogonality and energy charts (click a name in a chart's legend to hide its line).",
             "",
             "| run (line) | settings | step | held-out accuracy | orthogonality deviation, median layer "
             "| energy drift, median layer |",
             "|---|---|--:|--:|--:|--:|"]
    if run is not None:
        name = f"**run {current} · {method_label(run.config.method, short=True)}** (now: solid)"
        lines.append(_row(name, settings_text(run.config), run.step_count, run.config.steps, last_numbers(run)))
    for k, style in zip(kept, STYLE_NAMES):
        numbers = {"accuracy": k.accuracy, "orth_dev": k.orth_dev, "he_drift": k.he_drift}
        lines.append(_row(f"{k.name} ({style})", k.settings, k.step, k.target, numbers))
    return "\n".join(lines)


def kept_note(kept: Optional[KeptRun], dropped: Optional[KeptRun]) -> str:
    """What the page says when a run was just kept (and which one no longer fits)."""
    if kept is None:
        return ""
    text = (f"Your previous run, **{kept.name}** (step {kept.step}), is kept for comparison: grey dotted "
            "lines in the loss, orthogonality and energy charts, and a row in the table under the loss chart.")
    if dropped is not None:
        text += f" ({dropped.name} is no longer kept: the last {KEEP} are.)"
    return text
