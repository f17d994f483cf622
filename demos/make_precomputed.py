"""Make the method comparisons the Compare tab shows instantly (demos/precomputed/).

For each built-in task and each seed, every method of
qgoft_core.explore.compare.COMPARE_METHODS is trained one after another with
that seed and the same step budget on the offline default MiniLM
(qgoft_core.explore.compare.run_comparison); the seeds' comparisons are then
folded into one file of means and sample sds (compare.aggregate_seeds, every
run kept in it), written as JSON with the command, library versions, date and
machine of each run.

    python demos/make_precomputed.py                       # both tasks, 60 steps, seeds 0, 1, 2
    python demos/make_precomputed.py --tasks topic --steps 80 --seeds 0,1,2,3
    python demos/make_precomputed.py --seeds 1 --out /tmp/seed1   # one seed: a one-run file

Seeds run in parallel (one process per seed, each with its own --out) are
joined afterwards, without training, from their files or folders:

    python demos/make_precomputed.py --from /tmp/seed0 /tmp/seed1 /tmp/seed2

(--from also takes multi-seed files, whose runs count one by one; with --from,
--seeds given explicitly trains those seeds too and adds them.)

The learning rates are COMPARE_METHODS' (chosen by benchmarks/quality.py).

Runs are reproducible on CPU: dropout off, fixed seeds, own data-order
generator (see qgoft_core/training.py); the seconds per step are this
machine's and vary with its load (and with the thread count of each run).
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
from typing import Optional

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


def command(argv: Optional[list[str]] = None) -> str:
    """This script's command line (the arguments given to `main`, else the process's)."""
    args = sys.argv[1:] if argv is None else list(argv)
    return "python " + " ".join(shlex.quote(a) for a in ["demos/make_precomputed.py"] + args)


def run_seed(task: str, seed: int, steps: int, eval_every: int, cmd: str) -> C.CompareResult:
    """One seed's comparison of every method on `task`, printing each row as it finishes."""
    meta = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": cmd, "versions": versions(), "device": machine(),
            "note": "made by demos/make_precomputed.py; seconds per step depend on the machine's load"}
    started = time.monotonic()
    result = None
    for event in C.compare_runs(C.DEFAULT_METHODS, task, seed=seed, steps=steps, eval_every=eval_every,
                                meta=meta):
        result = event.result
        if event.kind == "row":
            row = result.rows[-1]
            print(f"  [{task} seed {seed}] {row.label:14s} acc {100 * row.accuracy:5.1f}%  cka {row.cka:.4f}  "
                  f"kept {100 * row.retention_kept:5.1f}%  orth {row.orth_dev:.2e}  "
                  f"HE {row.he_drift:.2e}  {row.sec_per_step:.2f} s/step  ({row.seconds:.0f} s)", flush=True)
        elif event.kind == "error":
            print(f"  [{task} seed {seed}] {event.key}: {event.record['message']}", flush=True)
    assert result is not None
    result.meta["total_seconds"] = round(time.monotonic() - started, 1)
    return result


def combine(runs: list[C.CompareResult], cmd: str) -> C.CompareResult:
    """One run as it is; several folded into means and sds, with this command in the meta."""
    if len(runs) == 1 and not runs[0].per_seed:
        return runs[0]
    result = C.aggregate_seeds(runs)
    result.meta["command"] = cmd  # each run's own command stays in meta["runs"]
    result.meta["aggregated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    result.meta["note"] = (f"mean and sample sd over seeds {', '.join(map(str, result.seeds))}, made by "
                           "demos/make_precomputed.py; every run is in per_seed, its command in meta.runs")
    return result


def write(result: C.CompareResult, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = precomputed_path(result.task, out_dir)
    path.write_text(C.result_to_json(result) + "\n", encoding="utf-8")
    seeds = ", ".join(map(str, result.seeds))
    print(f"wrote {path} (seeds {seeds})", flush=True)
    for row in result.rows:
        sd = f" ± {100 * row.accuracy_sd:.1f}" if row.n_seeds > 1 else ""
        print(f"  {row.label:14s} acc {100 * row.accuracy:5.1f}{sd}%  ({row.n_seeds} seed(s), {row.status})")
    return path


def read_inputs(sources: list[Path], tasks: list[str]) -> dict[str, list[C.CompareResult]]:
    """task -> the comparisons found in `sources` (files, or folders holding compare_<task>.json)."""
    found: dict[str, list[C.CompareResult]] = {task: [] for task in tasks}
    for source in sources:
        if source.is_dir():
            files = [precomputed_path(task, source) for task in tasks if precomputed_path(task, source).is_file()]
            if not files:
                raise SystemExit(f"--from {source}: no compare_<task>.json for {', '.join(tasks)} in it")
        elif source.is_file():
            files = [source]
        else:
            raise SystemExit(f"--from {source}: no such file or folder")
        for path in files:
            try:
                result = C.result_from_json(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise SystemExit(f"--from {path}: {exc}") from None
            if result.task in found:
                found[result.task].append(result)
    return found


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers separated by commas, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"give distinct non-negative seeds, e.g. 0,1,2 (got {text!r})")
    return seeds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(BUILTIN_TASKS), choices=BUILTIN_TASKS)
    parser.add_argument("--seeds", type=seed_list, default=None,
                        help="seeds to train, comma-separated (default 0,1,2; with --from: none)")
    parser.add_argument("--seed", type=int, default=None, help="one seed (the same as --seeds N)")
    parser.add_argument("--from", dest="sources", nargs="+", type=Path, default=[], metavar="FILE_OR_DIR",
                        help="comparison files, or folders of compare_<task>.json, to aggregate")
    parser.add_argument("--steps", type=int, default=60, help="training steps per method")
    parser.add_argument("--eval-every", type=int, default=12, help="steps between curve points")
    parser.add_argument("--out", type=Path, default=PRECOMPUTED_DIR)
    args = parser.parse_args(argv)
    cmd = command(argv)
    if args.seed is not None and args.seeds is not None:
        parser.error("give --seed or --seeds, not both")
    seeds = [args.seed] if args.seed is not None else args.seeds
    inputs = read_inputs(args.sources, args.tasks) if args.sources else {t: [] for t in args.tasks}
    if seeds is None:
        seeds = [] if args.sources else [0, 1, 2]
    for task in args.tasks:
        runs = inputs[task]
        have = {run.seed for result in runs for run in C.single_seed_results(result)}
        for seed in seeds:
            if seed in have:
                print(f"[{task}] seed {seed} is already in the --from files: not trained again", flush=True)
                continue
            runs.append(run_seed(task, seed, args.steps, args.eval_every, cmd))
        if not runs:
            print(f"[{task}] nothing to write: no --from file for this task", flush=True)
            continue
        try:
            write(combine(runs, cmd), args.out)
        except ValueError as exc:
            raise SystemExit(f"[{task}] {exc}") from None


if __name__ == "__main__":
    main()
