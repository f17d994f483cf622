"""What the Train tab shows, drawn from a run's history (no training happens here).

Every function reads a ``TrainingRun``'s recorded history and a visitor's
``ViewState`` and returns plain values keyed by the element id of the
component that shows them. Figures come from ``qgoft_core.viz.figures`` (which
downsamples long histories) and are serialised here, once, into Gradio's
``PlotData``: the cost of drawing is then paid, and measured, in the training
loop that decides how often to draw (see ``train_session.Throttle``).
"""
from __future__ import annotations

import hashlib

from typing import TYPE_CHECKING, Any, Optional, Sequence

import gradio as gr
import numpy as np
from gradio.components.plot import PlotData

from qgoft_core.explore.history import RunHistory, finite_or_none, round_float
from qgoft_core.explore.registry import has_penalty, method_label, method_spec
from qgoft_core.viz import figures as F

from qgoft_core.viz.training_charts import EarlierRun
from ui.runs import ViewState
from ui.train.earlier import table_markdown

if TYPE_CHECKING:
    from ui.train.earlier import RunShelf

# Element ids of the views (the Learn tab's tour and the tests address the same ids).
STATUS, INFO = "status", "run-info"
LOSS_PLOT = "loss-plot"
HEATMAP, HIST, NORM, ORTH, ENERGY = "angle-heatmap", "angle-hist", "norm-plot", "orth-plot", "energy-plot"
TABLE, LAYER_SELECT, TIMELINE, SELECTED = "layer-table", "layer-select", "timeline", "selected-layer"
EARLIER, FORGET = "runs-compared", "forget-runs-btn"  # the earlier runs kept for comparison (ui/train/earlier)
SNAPSHOT_KEYS = (HEATMAP, HIST, NORM, ORTH, ENERGY, TABLE, LAYER_SELECT, TIMELINE, SELECTED)
EARLIER_KEYS = (EARLIER, FORGET)
ALL_KEYS = (STATUS, INFO, LOSS_PLOT, *SNAPSHOT_KEYS, *EARLIER_KEYS)
CHARTS = (LOSS_PLOT, HEATMAP, HIST, NORM, ORTH, ENERGY)

STATE_LABELS = {
    "ready": "ready",
    "preparing": "preparing the run…",
    "waiting": "waiting for its turn",
    "training": "training…",
    "paused": "paused",
    "done": "done",
    "stopped": "stopped",
    "error": "error",
}


def plot_data(fig) -> PlotData:
    """A plotly figure serialised once, so Gradio sends it without converting it again."""
    return PlotData(type="plotly", plot=fig.to_json())


def _fmt(value: Optional[float], digits: int = 4) -> str:
    value = finite_or_none(value)
    return "–" if value is None else f"{value:.{digits}g}"


# -- the status line ---------------------------------------------------------------
def run_info(run, state: str, message: str = "", run_id: str = "") -> dict[str, Any]:
    """The status as data (for API clients and tests): step, losses, accuracy, state."""
    info: dict[str, Any] = {"run": run_id, "state": state, "message": message, "step": 0, "target": None,
                            "loss": None, "reg_loss": None, "accuracy": None, "sec_per_step": None}
    if run is None:
        return info
    steps, evals = run.history.steps, run.history.evals
    info.update(step=run.step_count, target=run.config.steps, seed=run.seed, method=run.config.method,
                device=run.device_label())
    if steps:
        last = steps[-1]
        info.update(loss=finite_or_none(last["loss"]), reg_loss=finite_or_none(last["reg_loss"]),
                    sec_per_step=finite_or_none(_recent_sec_per_step(steps)))
    if evals:
        info.update(accuracy=finite_or_none(evals[-1]["accuracy"]), accuracy_step=evals[-1]["step"])
    return info


def _recent_sec_per_step(steps: list[dict], window: int = 10) -> float:
    recent = steps[-window:]
    return float(np.median([r["sec_per_step"] for r in recent])) if recent else float("nan")


def status_markdown(run, state: str, message: str = "") -> str:
    """One line: step, losses, held-out accuracy, s/step, device, trainable vs total parameters."""
    label = STATE_LABELS.get(state, state)
    if run is None:
        line = f"**No run yet** · {label}"
        return line + (f"\n\n{message}" if message else "")
    info = run_info(run, state)
    trainable, total = run.trainable_parameters()
    parts = [f"**Step {info['step']} / {info['target']}** · {label}"]
    if info["loss"] is not None or run.history.steps:
        reg = f" + regulariser {_fmt(info['reg_loss'], 3)}" if run.config.method == "qgoft" else ""
        parts.append(f"task loss {_fmt(info['loss'])}{reg}")
    if info["accuracy"] is not None:
        parts.append(f"held-out accuracy **{100 * info['accuracy']:.1f}%** (step {info['accuracy_step']})")
    if info["sec_per_step"] is not None:
        parts.append(f"{info['sec_per_step']:.2f} s/step")
    parts.append(info["device"])
    share = 100.0 * trainable / total if total else 0.0
    parts.append(f"trainable {trainable:,} of {total:,} parameters ({share:.2g}%)")
    parts.append(f"{method_label(run.config.method)}, seed {run.seed}")
    line = " · ".join(parts)
    return line + (f"\n\n{message}" if message else "")


# -- charts ----------------------------------------------------------------------------
def has_regulariser(method: str) -> bool:
    """Whether the method adds a penalty to the loss (the registry says: only qGOFT, λ·Σ⟨α, β⟩²)."""
    return has_penalty(method)


def loss_view(run, earlier: Sequence[EarlierRun] = ()) -> Optional[PlotData]:
    """Loss curves, with the earlier runs kept for comparison; the regulariser panel only for a
    method that has one. Earlier runs are drawn even before the current run has any data."""
    has_data = run is not None and bool(run.history.steps or run.history.evals)
    if not has_data and not earlier:
        return None
    steps = list(run.history.steps) if has_data else []
    evals = list(run.history.evals) if has_data else []
    regulariser = run is not None and has_regulariser(run.config.method)
    return plot_data(F.loss_curves(steps, evals, regulariser=regulariser, earlier=list(earlier)))


def earlier_views(run, shelf: Optional["RunShelf"], lean: bool = False) -> dict[str, Any]:
    """The table of this run beside the kept ones (and the button that forgets them), shown once a run is kept.

    `lean`: only the table's text, for live updates after the first (what is shown does not change
    during a run, and a property update costs Gradio a component rebuild; see ui/lean_blocks.py)."""
    kept = shelf.runs() if shelf is not None else []
    text = table_markdown(run, shelf.number if shelf is not None else 1, kept)
    if lean:
        return {EARLIER: text}
    return {EARLIER: gr.Markdown(value=text, visible=bool(kept)), FORGET: gr.Button(visible=bool(kept))}


def curves_of(shelf: Optional["RunShelf"]) -> list[EarlierRun]:
    return shelf.curves() if shelf is not None else []


def snapshot_index(snapshots: list[dict], step: Optional[int]) -> int:
    """Index of the newest snapshot at or before `step` (None: the newest of all)."""
    return RunHistory(snapshots=list(snapshots)).snapshot_index(step)


def _round_cell(value):
    return round_float(value, 4) if isinstance(value, float) else value


def table_rows(snapshot: dict) -> list[list]:
    """The layer table's rows: short name first, the numbers, the full module path last."""
    rows = F.layer_overview_table(snapshot)
    return [[_round_cell(row.get(c)) for c in F.TABLE_COLUMNS] for row in rows]


TABLE_LABEL = "Click a row to select that layer (the full module path is the last column)"


def table_update(snapshot: Optional[dict]) -> gr.Dataframe:
    """The layer table: short name first, number columns wide enough for one line, the long path last
    (past the right edge on narrow pages: the table scrolls sideways)."""
    return gr.Dataframe(value=table_rows(snapshot) if snapshot else [], headers=F.TABLE_COLUMNS,
                        column_widths=F.TABLE_COLUMN_WIDTHS, wrap=True, label=TABLE_LABEL)


def min_neurons(snapshot: dict) -> Optional[int]:
    """The fewest neurons of the snapshot's layers (sets the energy chart's rounding band)."""
    counts = [np.size(layer.get("norm_ratio")) for layer in snapshot["layers"].values()]
    counts = [c for c in counts if c]
    return min(counts) if counts else None


def layer_choices(names: list[str]) -> list[tuple[str, str]]:
    """(short name, module path): the menu shows the short name; the line below it names the full path."""
    return [(F.short_layer_name(n), n) for n in names]


def selected_layer(names: list[str], view: ViewState) -> Optional[str]:
    if not names:
        return None
    return view.layer if view.layer in names else names[0]


EMPTY_MESSAGE = "Train or step the run: the charts fill in as snapshots are recorded."


def empty_snapshot_views(message: str = "") -> dict[str, Any]:
    return {
        HEATMAP: None, HIST: None, NORM: None, ORTH: None, ENERGY: None,
        TABLE: table_update(None),
        LAYER_SELECT: gr.Dropdown(choices=[], value=None),
        TIMELINE: gr.Slider(minimum=0, maximum=1, value=0),
        SELECTED: message or EMPTY_MESSAGE,
    }


def snapshot_views(run, view: ViewState, earlier: Sequence[EarlierRun] = (), lean: bool = False,
                   snapshots: Optional[list] = None) -> dict[str, Any]:
    """Heatmap, detail views of the selected layer, layer table, layer list and timeline; the
    orthogonality and energy charts with a line for each earlier run (its median layer).

    `lean`: the table's rows and the selected layer as plain values, for live updates after the
    first one (headers and layer list stay what that one set; a property update costs Gradio a
    component rebuild, see ui/lean_blocks.py). `snapshots`: draw these instead of the run's
    (a run training in another thread may have recorded more by the time this draws)."""
    if snapshots is None:
        snapshots = list(run.history.snapshots) if run is not None else []
    if not snapshots:
        return empty_snapshot_views()
    index = snapshot_index(snapshots, view.snapshot_step)
    shown = snapshots[: index + 1]
    snap = shown[-1]
    names = list(snap["layers"])
    layer = selected_layer(names, view)
    steps = [s["step"] for s in shown]
    method = run.config.method

    angles = [snap["layers"][n].get("angles") for n in names]
    heatmap = F.angle_heatmap(names, angles, scale=view.scale)
    # bins from the layer's largest angle over the whole run: the edges stay put while scrubbing
    whole_run = F.angle_half_range([s["layers"].get(layer, {}).get("angles") for s in snapshots])
    hist = F.angle_histograms_over_time(steps, [s["layers"].get(layer, {}).get("angles") for s in shown],
                                        layer_name=layer, half_range=whole_run)
    norm = F.norm_change_histogram({layer: snap["layers"][layer]["norm_ratio"]})
    orth_steps, orth = F.layer_metric_series(shown, "orth_dev")
    drift_steps, drift = F.layer_metric_series(shown, "he_drift")
    latest = snapshots[-1]["step"]
    follow = "following the live run" if view.snapshot_step is None else "drag to the right end to follow the run"
    layer_info = snap["layers"][layer]
    notes = [f"**Layer {F.short_layer_name(layer)}** (`{layer}`) at **step {snap['step']}** "
             f"(snapshot {index + 1} of {len(snapshots)}; {follow})."]
    if not np.size(layer_info.get("angles")):
        notes.append(f"{method_label(method)} has no Givens angles: the angle charts stay empty; "
                     "norm change, orthogonality and energy drift still apply.")
    return {
        HEATMAP: plot_data(heatmap),
        HIST: plot_data(hist),
        NORM: plot_data(norm),
        ORTH: plot_data(F.orthogonality_over_steps(orth_steps, orth, highlight=layer, earlier=list(earlier))),
        ENERGY: plot_data(F.energy_drift_over_steps(drift_steps, drift, highlight=layer,
                                                    neurons=min_neurons(snap), earlier=list(earlier))),
        TABLE: table_rows(snap) if lean else table_update(snap),
        LAYER_SELECT: layer if lean else gr.Dropdown(choices=layer_choices(names), value=layer),
        TIMELINE: gr.Slider(minimum=0, maximum=max(1, latest), value=snap["step"]),
        SELECTED: " ".join(notes),
    }


def first_views_key(run, view: ViewState, earlier: Sequence[EarlierRun] = ()) -> Optional[tuple]:
    """What the step-0 snapshot views of `run` depend on, when they can be shared; else None.

    At step 0 every adapter is the identity, so runs that differ only in seed, learning rate or
    steps show the same charts: the key is the snapshot's content itself (a digest of its
    arrays), the method (named in the notes) and what the visitor looks at. Runs with earlier
    runs drawn beside them, or past step 0, are not shared.
    """
    snapshots = run.history.snapshots if run is not None else []
    if earlier or len(snapshots) != 1 or snapshots[0]["step"] != 0 or view.snapshot_step not in (None, 0):
        return None
    digest = hashlib.blake2b(digest_size=16)
    for name, layer in snapshots[0]["layers"].items():
        digest.update(name.encode())
        for field in ("angles", "norm_ratio", "scales"):
            value = layer.get(field)
            digest.update(b"-" if value is None else np.ascontiguousarray(value).tobytes())
        digest.update(repr((layer.get("orth_dev"), layer.get("he_drift"), sorted(layer.get("block", {}).items())))
                      .encode())
    return (digest.hexdigest(), run.config.method, view.layer, view.scale)


def timeline_only(run) -> dict[str, Any]:
    """While the visitor looks at an older snapshot: only stretch the timeline, keep their place."""
    snapshots = list(run.history.snapshots) if run is not None else []
    latest = snapshots[-1]["step"] if snapshots else 1
    return {TIMELINE: gr.Slider(maximum=max(1, latest))}


def comparison_views(run, view: ViewState, shelf: Optional["RunShelf"]) -> dict[str, Any]:
    """Everything that draws the earlier runs: the loss chart, the snapshot views and the table."""
    earlier = curves_of(shelf)
    values = {LOSS_PLOT: loss_view(run, earlier)}
    values.update(snapshot_views(run, view, earlier))
    values.update(earlier_views(run, shelf))
    return values


def all_views(run, view: ViewState, state: str, message: str = "", run_id: str = "",
              shelf: Optional["RunShelf"] = None) -> dict[str, Any]:
    """Every view of the Train tab; `shelf`: the visitor's earlier runs, drawn beside this one."""
    values = {STATUS: status_markdown(run, state, message), INFO: run_info(run, state, message, run_id)}
    values.update(comparison_views(run, view, shelf))
    return values
