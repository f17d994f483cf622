"""Everything a finished (or paused) training run leaves behind.

`run_report_html` draws every figure of a run into one self-contained HTML
page (plotly.js inlined, opens offline); `history_to_records` /
`history_to_csv` export the raw numbers (the run's `RunHistory` in its one
JSON schema, NaN as null by the one policy of `qgoft_core.explore.history`); `write_run_outputs` writes the
adapter, the metrics and the report into one folder. Used by the command
line, the app's download buttons and the tests alike, so a run looks the
same wherever it is exported.
"""
from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from qgoft_core.explore.history import FLOAT32_DIGITS, events_of, finite_or_none, json_safe, round_float
from qgoft_core.explore.registry import has_penalty, method_label, method_spec
from qgoft_core.viz import figures as F

SIGNIFICANT_DIGITS = FLOAT32_DIGITS  # float32 precision: more digits in JSON/CSV would be noise
STEP_COLUMNS = ["step", "loss", "reg_loss", "lr", "sec_per_step", "examples_per_sec"]
EVAL_COLUMNS = ["accuracy", "loss", "cka"]
CSV_COLUMNS = STEP_COLUMNS + [f"eval_{c}" for c in EVAL_COLUMNS]
TRAINABLE_WEIGHTS_NAME = "trainable.safetensors"
TRAINABLE_INFO_NAME = "trainable_info.json"


# -- exports ------------------------------------------------------------------------
def run_summary(run) -> dict:
    """Who/what/where of a run: model, task, method, parameter counts, device, accuracy."""
    trainable, total = run.trainable_parameters()
    evals = run.history.evals
    return {
        "model": run.base.model_id,
        "task": getattr(run.task, "name", None),
        "label_names": list(getattr(run.task, "label_names", ())),
        "method": run.config.method,
        "method_label": method_label(run.config.method),
        "seed": run.seed,
        "steps_done": run.step_count,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "device": run.device_label(),
        "initial_accuracy": round_float(evals[0]["accuracy"]) if evals else None,
        "final_accuracy": round_float(evals[-1]["accuracy"]) if evals else None,
        "stopped_reason": run.stopped_reason,
    }


def history_to_records(run) -> dict:
    """The run as JSON-ready data: config, summary and its history (`RunHistory.to_dict`:
    schema, version, steps, evals, retention, snapshots)."""
    return {
        "config": json_safe(run.config.to_dict(), SIGNIFICANT_DIGITS),
        "summary": json_safe(run_summary(run), SIGNIFICANT_DIGITS),
        **run.history.to_dict(SIGNIFICANT_DIGITS),
    }


def history_to_jsonl(run) -> str:
    """One JSON object per line: first the run (config + summary + schema), then every event."""
    records = history_to_records(run)
    head = {"event": "run", "config": records["config"], "summary": records["summary"],
            "schema": records["schema"], "version": records["version"]}
    lines = [json.dumps(head, allow_nan=False)]
    lines += [json.dumps({"event": kind, **record}, allow_nan=False) for kind, record in events_of(records)]
    return "\n".join(lines) + "\n"


def history_to_csv(run) -> str:
    """One row per optimiser step; eval_* columns filled at the steps that were evaluated.

    An evaluation before the first step (step 0) gets a row of its own with
    only the eval columns.
    """
    rows: dict[int, dict] = {}
    for record in run.history.steps:
        rows[int(record["step"])] = {c: round_float(record.get(c)) if c != "step" else int(record[c])
                                     for c in STEP_COLUMNS}
    for record in run.history.evals:
        row = rows.setdefault(int(record["step"]), {"step": int(record["step"])})
        for c in EVAL_COLUMNS:
            row[f"eval_{c}"] = round_float(record.get(c))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for step in sorted(rows):
        writer.writerow({c: "" if rows[step].get(c) is None else rows[step][c] for c in CSV_COLUMNS})
    return out.getvalue()


# -- the HTML report ------------------------------------------------------------------
def _mean_abs(values) -> float:
    array = np.abs(np.asarray(values if values is not None else [], dtype=float))
    array = array[np.isfinite(array)]
    return float(array.mean()) if array.size else -1.0


def _worst_layer(snapshot: dict, key: str) -> Optional[str]:
    """The layer with the largest finite |value| of a scalar metric, for highlighting."""
    best, best_value = None, -1.0
    for name, layer in snapshot["layers"].items():
        value = finite_or_none(layer.get(key))
        if value is not None and abs(value) > best_value:
            best, best_value = name, abs(value)
    return best


def _settings_rows(run) -> list[dict]:
    summary = run_summary(run)
    trainable, total = summary["trainable_parameters"], summary["total_parameters"]
    share = 100.0 * trainable / total if total else 0.0
    rows = [
        {"setting": "model", "value": summary["model"]},
        {"setting": "task", "value": f"{summary['task']} ({', '.join(summary['label_names'])})"},
        {"setting": "method", "value": summary["method_label"]},
        {"setting": "trainable parameters", "value": f"{trainable:,} of {total:,} ({share:.3g}%)"},
        {"setting": "device", "value": summary["device"]},
        {"setting": "steps done", "value": summary["steps_done"]},
        {"setting": "held-out accuracy before training", "value": _percent(summary["initial_accuracy"])},
        {"setting": "held-out accuracy at the end", "value": _percent(summary["final_accuracy"])},
    ]
    if summary["stopped_reason"]:
        rows.append({"setting": "stopped", "value": summary["stopped_reason"]})
    config = run.config.to_dict()
    config["lr"] = run.config.resolved_lr()  # the value actually used, not None
    rows += [{"setting": f"RunConfig.{k}", "value": "None" if v is None else str(v)} for k, v in config.items()]
    return rows


def _percent(fraction: Optional[float]) -> str:
    return "not evaluated" if fraction is None else f"{100 * fraction:.1f}%"


def _note(text: str) -> str:
    return f'<p class="explain"><em>{html.escape(text)}</em></p>'


def _layer_rows(run, snapshot: dict) -> list[dict]:
    rows = F.layer_overview_table(snapshot)
    if run.config.method == "qgoft":  # the block-level terms only qGOFT has
        for row in rows:
            block = snapshot["layers"][row["module"]].get("block") or {}
            row["Σ⟨α,β⟩²"] = block.get("penalty")
            row["reflections (det<0)"] = block.get("reflections")
            row["block scale min"] = block.get("scale_min")
            row["block scale max"] = block.get("scale_max")
    return rows


def report_sections(run) -> list[tuple[str, str, Any]]:
    """(heading, explanation, figure or HTML) for every part of a run's report."""
    method = run.config.method
    history = run.history
    snapshots = history.snapshots
    last = snapshots[-1] if snapshots else None
    sections: list[tuple[str, str, Any]] = [
        ("Settings and result", "What was trained, how, and how well it does on held-out examples.",
         F.rows_to_html_table(_settings_rows(run), ["setting", "value"])),
        ("Training curves",
         "Task loss per step (and held-out loss), the orthogonality regulariser on its own scale, and "
         "held-out accuracy at each evaluation.",
         F.loss_curves(history.steps, history.evals, regulariser=has_penalty(method))),
    ]
    if last is None:
        sections.append(("Adapter", "", _note("No snapshot yet: the adapter figures appear once the "
                                              "run has been evaluated.")))
        return sections

    names = list(last["layers"])
    has_angles = method_spec(method).has_angles and any(np.size(last["layers"][n].get("angles")) for n in names)
    if has_angles:
        sections.append((
            f"Rotation angles at step {last['step']}",
            "One row per adapted layer, one column per Givens pair (qGOFT: the angle of each block's "
            "rotation factor). Red = positive, blue = negative, white = not rotated.",
            F.angle_heatmap(names, [last["layers"][n].get("angles") for n in names]),
        ))
        busiest = max(names, key=lambda n: _mean_abs(last["layers"][n].get("angles")))
        sections.append((
            "Angle distribution over time",
            f"How the rotation angles of {busiest} (the layer with the largest mean |angle|) spread out "
            "from 0 as training proceeds; fixed bins, so rows are comparable.",
            F.angle_histograms_over_time([s["step"] for s in snapshots],
                                         [s["layers"].get(busiest, {}).get("angles") for s in snapshots],
                                         layer_name=busiest),
        ))
    else:
        sections.append(("Rotation angles", "", _note(
            f"{method_label(method)} has no per-pair Givens rotation angles, so the angle "
            "heatmap and the angle histograms are not drawn for this run.")))

    sections.append((
        f"Norm changes at step {last['step']}",
        "Per-neuron ratio ||w'_i|| / ||w_i|| over all adapted layers. A strict rotation keeps every "
        "ratio at exactly 1; qGOFT's free block norms, scales, LoRA and full fine-tuning move them.",
        F.norm_change_histogram({n: last["layers"][n].get("norm_ratio") for n in names}),
    ))

    steps, orth = F.layer_metric_series(snapshots, "orth_dev")
    if method_spec(method).rotation and any(np.isfinite(v).any() for v in map(np.asarray, orth.values())):
        sections.append((
            "Orthogonality deviation",
            "||M^T M - I||_F / sqrt(d) of each layer's input-side operator M. Strict GOFT stays at float "
            "error; qGOFT drifts (its penalty only makes each block's columns perpendicular, their lengths stay "
            "free; with input scaling the scale is included); OFT with the Cayley-Neumann series is "
            "only approximately orthogonal. Dashed line: the tolerance still counted as orthogonal.",
            F.orthogonality_over_steps(steps, orth, highlight=_worst_layer(last, "orth_dev")),
        ))
    else:
        sections.append(("Orthogonality deviation", "", _note(
            f"{method_label(method)} learns no rotation, so there is no operator whose "
            "orthogonality could be measured.")))

    steps, drift = F.layer_metric_series(snapshots, "he_drift")
    sections.append((
        "Hyperspherical-energy drift",
        "Relative change of the hyperspherical energy of each layer's neurons. Any rotation applied to "
        "every neuron keeps all angles between neurons, so strict GOFT keeps it at float error.",
        F.energy_drift_over_steps(steps, drift, highlight=_worst_layer(last, "he_drift")),
    ))
    rows = _layer_rows(run, last)
    sections.append((
        f"Per-layer summary at step {last['step']}",
        "One row per adapted layer; angles in degrees, ratios 1 = unchanged.",
        F.rows_to_html_table(rows, list(rows[0]) if rows else F.TABLE_COLUMNS),
    ))
    return sections


def run_report_html(run, title: Optional[str] = None) -> str:
    """A self-contained HTML report with every figure of `run` (a TrainingRun)."""
    if title is None:
        task = getattr(run.task, "name", "task")
        title = (f"qGOFT Explorer run: {method_label(run.config.method)} "
                 f"on {task} ({run.base.model_id})")
    return F.html_report(title, report_sections(run))


# -- the output folder ----------------------------------------------------------------
def save_trained_weights(run, directory) -> Path:
    """The adapter (or, for head-only / full fine-tuning, the trained tensors) in `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tuned, method = run.tuned, run.config.method
    if tuned.spec.givens:
        tuned.qgoft.save_pretrained(directory)
    elif method in ("lora", "oft", "boft"):
        for peft_config in tuned.model.peft_config.values():
            if not peft_config.base_model_name_or_path:
                # PEFT cannot read the id off our SentenceClassifier: record it for loaders.
                peft_config.base_model_name_or_path = run.base.model_id
        tuned.model.save_pretrained(str(directory))
    else:
        from safetensors.torch import save_file
        tensors = {name: p.detach().cpu().contiguous().clone()
                   for name, p in tuned.model.named_parameters() if p.requires_grad}
        save_file(tensors, str(directory / TRAINABLE_WEIGHTS_NAME), metadata={"format": "pt"})
        info = {"method": method, "base_model_name_or_path": run.base.model_id,
                "num_labels": run.task.num_labels, "label_names": list(run.task.label_names),
                "pooling": run.base.pooling,
                "contents": ("the trained head (head.weight, head.bias) of a SentenceClassifier"
                             if method == "head" else
                             "every weight of the fine-tuned SentenceClassifier (backbone.* and head.*)"),
                "note": "not an adapter: load with SentenceClassifier(...).load_state_dict(..., strict=False)"}
        (directory / TRAINABLE_INFO_NAME).write_text(json.dumps(info, indent=2))
    return directory


def write_run_outputs(run, out_dir) -> dict[str, Path]:
    """Write adapter/, metrics.jsonl, metrics.csv and report.html into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "adapter": save_trained_weights(run, out_dir / "adapter"),
        "metrics_jsonl": out_dir / "metrics.jsonl",
        "metrics_csv": out_dir / "metrics.csv",
        "report": out_dir / "report.html",
    }
    paths["metrics_jsonl"].write_text(history_to_jsonl(run), encoding="utf-8")
    paths["metrics_csv"].write_text(history_to_csv(run), encoding="utf-8")
    paths["report"].write_text(run_report_html(run), encoding="utf-8")
    return paths
