"""Cost of the adapter metrics against one training step, on the default model.

The issue's target: computing every metric (angles, norm changes, orthogonality
deviation, hyperspherical energy, for all 36 adapted layers of MiniLM) must
cost less than one training step (batch 16 x 32 tokens). Timed in one run,
interleaved, median of --repeats: the step, the per-layer metrics, and the
representation similarity (linear CKA of mean-pooled hidden states on the same
16 x 32 batch against the base's, which are computed once); prints the ratios.

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
from qgoft_core.explore.models import load_base  # noqa: E402


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

    with torch.no_grad():
        base_states = model(input_ids=ids, attention_mask=mask).last_hidden_state.mean(1)

    def cka() -> None:
        with torch.no_grad():
            tuned = model(input_ids=ids, attention_mask=mask).last_hidden_state.mean(1)
        linear_cka(base_states, tuned)

    times: dict[str, list[float]] = {"step": [], "layers": [], "cka": []}
    for i in range(repeats + 2):
        for key, fn in (("step", train_step), ("layers", lambda: adapter_metrics(model, cache)), ("cka", cka)):
            t = time.perf_counter()
            fn()
            if i >= 2:
                times[key].append(time.perf_counter() - t)
    return {f"{k}_ms": 1e3 * statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"torch threads: {torch.get_num_threads()}")
    print("| method | training step (ms) | per-layer metrics, 36 layers (ms) | CKA forward (ms) "
          "| per-layer / step | all / step |")
    print("|---|---:|---:|---:|---:|---:|")
    for method in ("goft", "qgoft"):
        r = measure(method, args.repeats)
        total = r["layers_ms"] + r["cka_ms"]
        print(f"| {method} | {r['step_ms']:.0f} | {r['layers_ms']:.0f} | {r['cka_ms']:.0f} "
              f"| {r['layers_ms'] / r['step_ms']:.2f} | {total / r['step_ms']:.2f} |")


if __name__ == "__main__":
    main()
