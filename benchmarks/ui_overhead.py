"""What the live views cost a training run: the same steps with and without the streaming UI path.

"Without": ``TrainingRun.run()`` consumed bare, in a thread set up like the app's training
worker (PyTorch's thread count is per thread). "With": the Train tab's own generator
(``ui.train.stream.train_stream``: throttled redraws of the status line, the loss curves,
the heatmap, histograms, norm / orthogonality / energy charts and the layer table, each
serialised to JSON as Gradio sends it) consumed as a browser would, minus the network.
Both start from an identical, already built run (same seed, same data order), so the
difference is the UI alone. Runs are interleaved (bare, UI, bare, UI, ...) so machine noise
hits both alike; medians are reported, of wall time and of this process's CPU time (all its
threads; much less sensitive to other programs on a shared machine than wall time).

    python benchmarks/ui_overhead.py                      # 30 steps, 2 rounds, qGOFT
    python benchmarks/ui_overhead.py --steps 60 --rounds 3 --method goft
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ui.runs import RunRegistry  # noqa: E402
from ui.settings import Settings  # noqa: E402
from ui.train.controls import Controls  # noqa: E402
from ui.train.session import prepare_run, use_cpu_threads  # noqa: E402
from ui.train.stream import Throttle, train_stream  # noqa: E402


def fresh_run(registry: RunRegistry, session: str, controls: Controls):
    visitor = registry.visitor(session)
    prepare_run(registry, visitor, controls)  # built outside the timing: the same in both paths
    return visitor.run


def time_bare(registry: RunRegistry, controls: Controls, tag: str) -> tuple[float, float]:
    """The run alone, in a thread set up exactly like the app's training worker (same thread count)."""
    run = fresh_run(registry, f"bare-{tag}", controls)
    result = {}

    def train() -> None:
        registry.try_slot("bare")  # counted as a training run, like the app's worker
        use_cpu_threads(registry)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in run.run():
            pass
        result["times"] = (time.perf_counter() - start, time.process_time() - cpu)
        registry.leave("bare")

    worker = threading.Thread(target=train)
    worker.start()
    worker.join()
    return result["times"]


def time_ui(registry: RunRegistry, controls: Controls, tag: str) -> tuple[float, float, int, float]:
    session = f"ui-{tag}"
    fresh_run(registry, session, controls)
    throttle = Throttle()
    drawing = {"s": 0.0}
    original = throttle.draw

    def counted(kind, fn, *args):
        t0 = time.perf_counter()
        try:
            return original(kind, fn, *args)
        finally:
            drawing["s"] += time.perf_counter() - t0

    throttle.draw = counted
    updates = 0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in train_stream(registry, session, controls, throttle=throttle):
        updates += 1
    return time.perf_counter() - start, time.process_time() - cpu, updates, drawing["s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--method", default="qgoft")
    args = parser.parse_args()

    registry = RunRegistry(replace(Settings.from_env(), max_concurrent_runs=4, max_seconds=10_000))
    controls = Controls(method=args.method, steps=args.steps)
    fresh_run(registry, "warm-up", controls)  # load the base and tokenise the task once
    bare, bare_cpu, ui, ui_cpu, counts, drawn = [], [], [], [], [], []
    for r in range(args.rounds):
        wall, cpu = time_bare(registry, controls, str(r))
        bare.append(wall)
        bare_cpu.append(cpu)
        wall, cpu, updates, drawing = time_ui(registry, controls, str(r))
        ui.append(wall)
        ui_cpu.append(cpu)
        counts.append(updates)
        drawn.append(drawing)
        print(f"round {r + 1}: bare {bare[-1]:.2f} s (cpu {bare_cpu[-1]:.1f} s), with UI {ui[-1]:.2f} s "
              f"(cpu {ui_cpu[-1]:.1f} s; {updates} page updates, {drawing:.2f} s drawing the live charts)",
              flush=True)
    b, u = statistics.median(bare), statistics.median(ui)
    bc, uc = statistics.median(bare_cpu), statistics.median(ui_cpu)
    print(f"\n{args.steps} steps of {args.method} on the default model, median of {args.rounds} rounds:")
    print(f"  without UI: {b:.2f} s ({b / args.steps:.3f} s/step), cpu {bc:.1f} s")
    print(f"  with UI:    {u:.2f} s ({u / args.steps:.3f} s/step), cpu {uc:.1f} s, "
          f"{statistics.median(counts):.0f} page updates, {statistics.median(drawn):.2f} s drawing")
    print(f"  UI overhead, wall time: {100 * (u / b - 1):+.1f}%  (ratio {u / b:.3f}; target < 10%)")
    print(f"  UI overhead, CPU time:  {100 * (uc / bc - 1):+.1f}%  (ratio {uc / bc:.3f})")
    print(f"  drawing share of the UI run: {100 * statistics.median(drawn) / u:.1f}%")


if __name__ == "__main__":
    main()
