"""Cost of the adapter metrics against one training step, on the default model.

The issue's target: computing every metric (angles, norm changes, orthogonality
deviation, hyperspherical energy, for all 36 adapted layers of MiniLM) must
cost less than one training step (batch 16 x 32 tokens). Both are timed in one
run, interleaved, median of --repeats; prints the ratio.

    python benchmarks/metrics_cost.py
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qgoft_core import QGOFTConfig, get_qgoft_model, share_base  # noqa: E402
from qgoft_core.metrics import BaseEnergyCache, adapter_metrics, linear_cka  # noqa: E402
from qgoft_core.models import load_base  # noqa: E402


def measure(method: str, repeats: int) -> dict[str, float]:
    base = load_base()
    model = get_qgoft_model(share_base(base.encoder), QGOFTConfig(method=method))
    with torch.no_grad():  # a trained-looking adapter: non-zero angles / blocks
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    ids = torch.randint(1000, 20000, (16, 32))
    mask = torch.ones_like(ids)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    cache = BaseEnergyCache()
    adapter_metrics(model, cache)  # base energies are computed once per run

    def train_step() -> None:
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        (out.pow(2).mean() + model.regularization_loss()).backward()
        opt.step()
        opt.zero_grad()

    def all_metrics() -> None:
        adapter_metrics(model, cache)
        with torch.no_grad():
            tuned = model(input_ids=ids, attention_mask=mask).last_hidden_state.mean(1)
        linear_cka(tuned, tuned)

    step_t, metric_t = [], []
    for i in range(repeats + 2):
        t = time.perf_counter(); train_step(); dt_step = time.perf_counter() - t
        t = time.perf_counter(); all_metrics(); dt_metric = time.perf_counter() - t
        if i >= 2:
            step_t.append(dt_step)
            metric_t.append(dt_metric)
    return {"step_ms": 1e3 * statistics.median(step_t), "metrics_ms": 1e3 * statistics.median(metric_t)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"| method | training step (ms) | all metrics, 36 layers (ms) | metrics / step |")
    print("|---|---:|---:|---:|")
    for method in ("goft", "qgoft"):
        r = measure(method, args.repeats)
        print(f"| {method} | {r['step_ms']:.0f} | {r['metrics_ms']:.0f} | {r['metrics_ms'] / r['step_ms']:.2f} |")


if __name__ == "__main__":
    main()
