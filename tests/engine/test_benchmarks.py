"""Smoke tests of the step-time benchmark (qgoft_core.explore.step_time) on a tiny random BertModel.

Every method runs 1 warm-up + 2 timed steps; only that each number is finite
and positive is checked -- timings are never asserted.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from qgoft_core.explore import step_time as st

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_result():
    threads = torch.get_num_threads()
    try:
        # One thread: a tiny model gains nothing from more, and a busy machine
        # makes oversubscribed OpenMP threads very slow.
        return st.run_benchmark(st.ALL_METHODS, model="tiny", steps=2, warmup=1, threads=1, memory="alloc")
    finally:
        torch.set_num_threads(threads)


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_every_method_has_a_row_of_finite_positive_numbers(tiny_result):
    rows = tiny_result["rows"]
    assert [r["method"] for r in rows] == list(st.ALL_METHODS)
    for r in rows:
        for key in ("trainable", "ms_median", "peak_mib", "time_vs_lora", "mem_vs_lora"):
            assert _finite_positive(r[key]), (r["method"], key, r[key])
        assert len(r["ms_all"]) == 2 and all(_finite_positive(t) for t in r["ms_all"])
        assert math.isfinite(r["final_loss"])
    lora = next(r for r in rows if r["method"] == "lora")
    assert lora["time_vs_lora"] == pytest.approx(1.0) and lora["mem_vs_lora"] == pytest.approx(1.0)


def test_merged_inference_rows(tiny_result):
    merged = tiny_result["merged_inference"]
    assert [m["model"] for m in merged] == ["base model (no adapter)", "GOFT merged", "qGOFT merged"]
    for m in merged:
        assert _finite_positive(m["ms_median"]) and _finite_positive(m["vs_base"])


def test_trainable_counts_are_consistent(tiny_result):
    by = {r["method"]: r["trainable"] for r in tiny_result["rows"]}
    # d - 1 angles per layer, whichever way the rotation is computed; qGOFT 4 numbers per pair.
    assert by["goft"] == by["goft-dense"] == by["goft-densemm"]
    assert by["qgoft"] == 4 * by["goft"]
    assert by["full"] > max(v for k, v in by.items() if k != "full")


def test_render_and_json(tiny_result):
    text = st.render(tiny_result)
    markdown = st.render(tiny_result, markdown=True)
    for r in tiny_result["rows"]:
        assert r["label"] in text and r["label"] in markdown
    assert "| --- |" in markdown and "qGOFT merged" in markdown
    assert json.loads(json.dumps(tiny_result))["setup"]["model"] == "tiny"


@pytest.mark.parametrize("sparse_levels", [True, False])
def test_dense_r_is_the_same_operator_as_goft(sparse_levels):
    """The authors'-approach wrapper computes exactly GOFT's map (and gradient)."""
    from qgoft_core import QGOFTLayer

    torch.manual_seed(0)
    d = 20  # not a power of two: exercises the carry rule
    base = nn.Linear(d, 12).requires_grad_(False)
    ours = QGOFTLayer(base, method="goft")
    dense = st.DenseRGOFTLinear(base, sparse_levels=sparse_levels)
    theta = torch.randn(d - 1)
    with torch.no_grad():
        ours.qgoft_theta.copy_(theta)
        dense.theta.copy_(theta)
    x = torch.randn(5, 3, d)
    y_ours, y_dense = ours(x), dense(x)
    torch.testing.assert_close(y_dense, y_ours, rtol=1e-5, atol=1e-5)
    y_ours.square().sum().backward()
    y_dense.square().sum().backward()
    torch.testing.assert_close(dense.theta.grad, ours.qgoft_theta.grad, rtol=1e-4, atol=1e-4)
    rot = dense.rotation()
    torch.testing.assert_close(rot @ rot.T, torch.eye(d), rtol=0, atol=1e-5)


def test_memory_child_reports_bytes():
    threads = torch.get_num_threads()
    try:
        out = st.memory_child("goft", "tiny", 4, 8, threads=1)
    finally:
        torch.set_num_threads(threads)
    assert out["method"] == "goft" and isinstance(out["peak_bytes"], int) and out["peak_bytes"] >= 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown methods"):
        st.run_benchmark(["nope"], model="tiny")
    with pytest.raises(ValueError, match="steps"):
        st.run_benchmark(["lora"], model="tiny", steps=0)


def test_help_in_process(capsys):
    with pytest.raises(SystemExit) as exc:
        st.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--methods" in out and "--markdown" in out and "--tiny" in out and "--json" in out


def test_script_runs_from_its_path():
    """`python benchmarks/step_time.py` works without the repository on sys.path."""
    proc = subprocess.run([sys.executable, "benchmarks/step_time.py", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--methods" in proc.stdout
