"""The comparisons shipped with the app: one JSON file per built-in task in demos/precomputed,
made by `python demos/make_precomputed.py` and read with the engine's `result_from_json`."""
from __future__ import annotations

from pathlib import Path

from qgoft_core.explore.compare import CompareResult, result_from_json

PRECOMPUTED_DIR = Path(__file__).resolve().parent / "precomputed"


def precomputed_path(task: str, folder: Path | None = None) -> Path:
    return (folder or PRECOMPUTED_DIR) / f"compare_{task}.json"


def load_precomputed(task: str, folder: Path | None = None) -> CompareResult:
    """The comparison shipped for a built-in task."""
    path = precomputed_path(task, folder)
    if not path.is_file():
        raise FileNotFoundError(f"no precomputed comparison for task {task!r} (expected {path.name} in "
                                f"demos/precomputed; make it with python demos/make_precomputed.py)")
    return result_from_json(path.read_text(encoding="utf-8"))


def precomputed_tasks(folder: Path | None = None) -> list[str]:
    return sorted(p.stem.removeprefix("compare_") for p in (folder or PRECOMPUTED_DIR).glob("compare_*.json"))
