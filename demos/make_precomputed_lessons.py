"""Make the precomputed runs behind the Lessons tab (demos/precomputed_lessons/).

    nice -n 10 python3 -m demos.make_precomputed_lessons            # every run in demos.presets.RUNS
    nice -n 10 python3 -m demos.make_precomputed_lessons goft lora  # only these

Each run is the real engine (qgoft_core.explore.training.TrainingRun) on the offline
MiniLM and the built-in sentiment task: 60 steps, an evaluation and a snapshot
every 10, and the retention probe at every snapshot. Training is reproducible
on CPU (dropout off, seeded data order), so rerunning rebuilds the same
numbers up to floating-point differences between machines; the JSON file
records the command, the configuration and the library versions.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from demos.presets import (COMMON_CONFIG, FORMAT_VERSION, MAKE_COMMAND, PRECOMPUTED_DIR, RUNS,  # noqa: E402
                           file_sha256)
from qgoft_core.explore.history import json_safe  # noqa: E402

STEP_KEYS = ("step", "loss", "reg_loss", "lr", "sec_per_step")
SIGNIFICANT = 6  # digits kept in the JSON records (float32 training: more would be noise)


def _record(record: dict, keys=None) -> dict:
    """A history record for the file: the history's NaN policy, SIGNIFICANT digits."""
    keys = keys or record.keys()
    return json_safe({k: record[k] for k in keys if k in record}, SIGNIFICANT)


def _pack(snapshots: list[dict], names: list[str], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Per snapshot, the arrays of every layer concatenated: (snapshots, total) float16 + offsets."""
    sizes = [np.asarray(snapshots[0]["layers"][n][key]).size for n in names]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    flat = np.zeros((len(snapshots), int(offsets[-1])), dtype=np.float16)
    for row, snap in enumerate(snapshots):
        for k, name in enumerate(names):
            flat[row, offsets[k]:offsets[k + 1]] = np.asarray(snap["layers"][name][key], dtype=np.float32)
    return flat, offsets


def make_run(run_id: str, out_dir: Path = PRECOMPUTED_DIR) -> dict:
    import torch

    import qgoft_core
    from qgoft_core.explore.training import RunConfig, TrainingRun

    config = RunConfig(**{**COMMON_CONFIG, **RUNS[run_id]})
    start = time.perf_counter()
    run = TrainingRun(config)
    for kind, record in run.run():
        if kind == "snapshot":
            kept = run.retention()["kept"]  # recorded in run.history.retention
            print(f"  {run_id}: step {record['step']:3d}  retention kept {kept:.6g}", flush=True)
    history = run.history
    names = list(history.snapshots[0]["layers"])
    angles, angle_offsets = _pack(history.snapshots, names, "angles")
    norms, norm_offsets = _pack(history.snapshots, names, "norm_ratio")
    table = {key: np.array([[s["layers"][n][key] for n in names] for s in history.snapshots], dtype=np.float64)
             for key in ("orth_dev", "he_drift")}
    out_dir.mkdir(parents=True, exist_ok=True)
    npz_path = out_dir / f"{run_id}.npz"
    np.savez_compressed(npz_path, angles=angles, angle_offsets=angle_offsets, norm_ratio=norms,
                        norm_offsets=norm_offsets, orth_dev=table["orth_dev"], he_drift=table["he_drift"])
    trainable, total = run.trainable_parameters()
    record = {
        "format_version": FORMAT_VERSION,
        "run_id": run_id,
        "config": {**config.to_dict(), "resolved_lr": config.resolved_lr()},
        "model_id": run.base.model_id,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "steps": [_record(s, STEP_KEYS) for s in history.steps],
        "evals": [_record(e) for e in history.evals],
        "retention": [_record(r) for r in history.retention],
        "snapshot_steps": [int(s["step"]) for s in history.snapshots],
        "layer_names": names,
        "generated_by": {
            "script": "demos/make_precomputed_lessons.py",
            "command": f"{MAKE_COMMAND} {run_id}",
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "qgoft_core": qgoft_core.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "device": run.device_label(),
            "seconds": round(time.perf_counter() - start, 1),
            "npz_sha256": file_sha256(npz_path),
            "arrays": "angles/norm_ratio float16 (snapshots x concatenated layers, cut by *_offsets); "
                      "orth_dev/he_drift float64 (snapshots x layers)",
        },
    }
    (out_dir / f"{run_id}.json").write_text(json.dumps(record, separators=(",", ":")) + "\n", encoding="utf-8")
    return record


def main(argv: list[str]) -> int:
    wanted = argv or list(RUNS)
    unknown = [r for r in wanted if r not in RUNS]
    if unknown:
        print(f"unknown run(s) {unknown}; choose from {list(RUNS)}", file=sys.stderr)
        return 2
    for run_id in wanted:
        print(f"{run_id}: {RUNS[run_id]}", flush=True)
        record = make_run(run_id)
        final = record["evals"][-1]
        print(f"{run_id}: done in {record['generated_by']['seconds']} s, accuracy {final['accuracy']}", flush=True)
    total = sum(p.stat().st_size for p in PRECOMPUTED_DIR.iterdir() if p.is_file())
    print(f"{PRECOMPUTED_DIR}: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
