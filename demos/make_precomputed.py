"""Make the method comparisons the Compare tab shows instantly (demos/precomputed/).

For each built-in task, every method of qgoft_core.explore.compare.COMPARE_METHODS is
trained one after another with the same seed and step budget on the offline
default MiniLM (qgoft_core.explore.compare.run_comparison), and the result is written
as JSON with the command, library versions, date and machine that made it.

    python demos/make_precomputed.py                       # both tasks, 60 steps, seed 0
    python demos/make_precomputed.py --tasks topic --steps 80

The learning rates are COMPARE_METHODS' (chosen by benchmarks/quality.py).

Runs are reproducible on CPU: dropout off, fixed seeds, own data-order
generator (see qgoft_core/training.py); the seconds per step are this
machine's and vary with its load.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from qgoft_core.explore.data.tasks import BUILTIN_TASKS  # noqa: E402
from qgoft_core.explore import compare as C  # noqa: E402
from demos.comparisons import PRECOMPUTED_DIR, precomputed_path  # noqa: E402

def versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "platform": platform.platform()}


def machine() -> str:
    import torch
    from qgoft_core.explore.training import configure_cpu_threads
    configure_cpu_threads()  # what every run will use (QGOFT_THREADS / CPU_CORES / cores)
    return f"CPU, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores visible"


def command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0]).as_posix())] + sys.argv[1:])


def make_comparison(task: str, seed: int, steps: int, eval_every: int, out_dir: Path) -> Path:
    meta = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command(), "versions": versions(), "device": machine(),
            "note": "made by demos/make_precomputed.py; seconds per step depend on the machine's load"}
    started = time.monotonic()
    result = None
    for event in C.compare_runs(C.DEFAULT_METHODS, task, seed=seed, steps=steps, eval_every=eval_every,
                                meta=meta):
        result = event.result
        if event.kind == "row":
            row = result.rows[-1]
            print(f"  [{task}] {row.label:14s} acc {100 * row.accuracy:5.1f}%  cka {row.cka:.4f}  "
                  f"kept {100 * row.retention_kept:5.1f}%  orth {row.orth_dev:.2e}  "
                  f"HE {row.he_drift:.2e}  {row.sec_per_step:.2f} s/step  ({row.seconds:.0f} s)", flush=True)
        elif event.kind == "error":
            print(f"  [{task}] {event.key}: {event.record['message']}", flush=True)
    assert result is not None
    result.meta["total_seconds"] = round(time.monotonic() - started, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = precomputed_path(task, out_dir)
    path.write_text(C.result_to_json(result) + "\n", encoding="utf-8")
    print(f"wrote {path} ({result.meta['total_seconds']:.0f} s)", flush=True)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(BUILTIN_TASKS), choices=BUILTIN_TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60, help="training steps per method")
    parser.add_argument("--eval-every", type=int, default=12, help="steps between curve points")
    parser.add_argument("--out", type=Path, default=PRECOMPUTED_DIR)
    args = parser.parse_args(argv)
    for task in args.tasks:
        make_comparison(task, args.seed, args.steps, args.eval_every, args.out)


if __name__ == "__main__":
    main()
