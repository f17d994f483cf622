"""Smoke tests of the load benchmarks: benchmarks/visitors.py (N visitors press Train together) and
benchmarks/soak.py (visitors one after another, each uploading its own data set).

Each script runs once as a user runs it (`python benchmarks/<script>.py ...`, its own app in a
subprocess on 127.0.0.1) with tiny settings: a tiny local BERT, 2 visitors, 1-2 steps, no
start-up preload. The JSON is checked for its fields and sane values; no timing thresholds.
Both together take about 1.5 minutes on a busy 2-core machine; each is bounded by its own
timeouts. If the app cannot start here, they skip and say why.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

SCRIPT_TIMEOUT = 240  # seconds one script may take here, whatever happens


def run_script(script: str, args: list[str], tmp_path: Path) -> dict:
    pytest.importorskip("gradio_client")
    out = tmp_path / f"{script}.json"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.run([sys.executable, f"benchmarks/{script}.py", *args, "--json", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    if proc.returncode == 2 and "did not start" in proc.stdout:
        pytest.skip(f"the app could not start on this machine: {proc.stdout[-600:]}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.startswith(f"command: python benchmarks/{script}.py")
    data = json.loads(out.read_text())
    assert data["command"].startswith(f"python benchmarks/{script}.py")
    return data


def positive(x) -> bool:
    return isinstance(x, (int, float)) and x > 0


def test_visitors_smoke(tiny_base_dir, tmp_path):  # noqa: F811
    data = run_script("visitors", ["--visitors", "2", "--steps", "2", "--model", tiny_base_dir, "--no-warmup",
                                   "--env", "QGOFT_PRELOAD=0", "--timeout", "150", "--start-timeout", "150",
                                   "--markdown"], tmp_path)
    (r,) = data["results"]
    assert r["visitors"] == 2 and r["server_env"]["SYSTEM"] == "spaces" and r["server_env"]["SPACE_ID"]
    assert r["server_env"]["GRADIO_SERVER_NAME"] == "127.0.0.1"
    assert r["train_args"]["steps"] == 2 and r["train_args"]["model"] == tiny_base_dir
    lone, many = r["lone"], r["many"]
    assert lone["visitors"] == 1 and lone["admitted"] == 1 and lone["total_steps"] == 2
    assert many["visitors"] == 2 and many["admitted"] + many["refused"] == 2
    assert many["admitted"] == 2 and many["errors"] == 0 and many["timed_out"] == 0  # 2 slots by default
    assert many["total_steps"] == 4
    for rec in lone["records"] + many["records"]:
        assert rec["final_state"] == "done" and rec["steps"] == 2 and rec["error"] is None
        assert 0 < rec["t_first_update"] <= rec["t_first_step"] <= rec["t_done"]
    for phase in (lone, many):
        for key in ("first_step_p50_s", "first_step_p95_s", "done_p50_s", "done_p95_s", "wall_s", "steps_per_s"):
            assert positive(phase[key]), (key, phase[key])
        assert phase["first_step_p50_s"] <= phase["first_step_p95_s"]
        assert phase["done_p50_s"] <= phase["done_p95_s"]
    assert positive(r["ratio_to_lone"])
    assert r["peak_rss_mb"] >= max(r["rss_before_mb"], r["rss_end_mb"]) > 50
    assert r["smaps_rollup_end_mb"]["Anonymous"] > 0
    assert r["rss_samples"] and all(mb > 0 for _, mb in r["rss_samples"])


def test_soak_smoke(tiny_base_dir, tmp_path):  # noqa: F811
    data = run_script("soak", ["--visitors", "2", "--rows", "200", "--steps", "1", "--model", tiny_base_dir,
                               "--env", "QGOFT_PRELOAD=0", "--heartbeat", "1", "--timeout", "120",
                               "--start-timeout", "150"], tmp_path)
    assert data["visitors"] == 2 and data["rows"] == 200 and data["server_env"]["SYSTEM"] == "spaces"
    assert data["server_env"]["GRADIO_HEARTBEAT_INTERVAL"] == "1"
    visits = data["per_visitor"]
    assert [v["visitor"] for v in visits] == [1, 2]
    for v in visits:
        assert v["error"] is None, v
        assert v["upload_endpoint"] and v["upload_status"].startswith("Loaded")
        assert v["steps"] == 1 and v["train_final_state"] == "done"
        assert positive(v["train_t_done"]) and positive(v["rss_mb"]) and positive(v["anonymous_mb"])
    assert visits[0]["csv_sha1"] != visits[1]["csv_sha1"]  # every visitor's data set differs
    assert data["rss_after_first_mb"] == visits[0]["rss_mb"] and data["rss_end_mb"] == visits[1]["rss_mb"]
    assert isinstance(data["growth_after_first_mb"], (int, float))
    assert data["growth_after_10_mb"] is None and data["meets_target"] is None  # fewer than 11 visitors
    assert data["peak_rss_mb"] > 50 and data["errors"] == 0


# -- the helpers, without a server ---------------------------------------------------------------
def test_synthetic_data_sets_are_deterministic_and_differ_per_visitor():
    from soak import synthetic_rows
    a, again, b = synthetic_rows(1, 300), synthetic_rows(1, 300), synthetic_rows(2, 300)
    assert a == again and a != b and len(a) == 300
    assert {label for _, label in a} == {"positive", "negative"}
    assert len({text for text, _ in a}) > 250  # sentences, not a handful repeated


def test_percentile_and_the_space_environment(monkeypatch):
    from _app_server import percentile, space_env
    assert percentile([], 50) is None and percentile([None, float("nan")], 95) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    monkeypatch.setenv("QGOFT_MAX_STEPS", "3")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    env = space_env(12345, {"QGOFT_PRELOAD": "0"})
    assert "QGOFT_MAX_STEPS" not in env and env["QGOFT_PRELOAD"] == "0"  # the app's defaults, unless asked
    assert env["GRADIO_SERVER_NAME"] == "127.0.0.1" and env["GRADIO_SERVER_PORT"] == "12345"
    assert env["SYSTEM"] == "spaces" and env["SPACE_ID"] and env["HF_HUB_OFFLINE"] == "1"
