"""The app over HTTP with gradio_client: streamed training, cancelling, one run per visitor.

One app is launched for the module (its own run registry), on the offline default model.
The registry tests at the end need no server.
"""
import math
import threading
import time

import pytest

from tests.browser.browser_utils import build_test_app, launched, wait_until

INFO = 1  # position of the run-info JSON among the train event's outputs
STEPS = 4


def settings_args(steps=STEPS, method="qgoft", seed=0):
    # model, task, method, scaling, layers, lambda, lr, batch size, steps, seed
    return ("sentence-transformers/all-MiniLM-L6-v2", "sentiment", method, "none", "all", 0.01, 0.002, 16,
            steps, seed)


@pytest.fixture(scope="module")
def served():
    demo, ctx = build_test_app(max_concurrent_runs=2, queue_size=4, max_steps=500)
    with launched(demo) as url:
        yield url, ctx


@pytest.fixture
def client(served):
    from gradio_client import Client
    c = Client(served[0], verbose=False)
    yield c
    c.close()


def infos(outputs) -> list[dict]:
    """The run-info JSON of every streamed update that carried one (keep-alive ticks carry none)."""
    return [out[INFO] for out in outputs
            if isinstance(out, (list, tuple)) and isinstance(out[INFO], dict) and "state" in out[INFO]]


def test_streamed_training_yields_increasing_steps_and_finite_losses(client):
    job = client.submit(*settings_args(), api_name="/train")
    seen = infos(list(job))
    assert job.status().success
    training = [i for i in seen if i["state"] in ("training", "done")]
    steps = [i["step"] for i in training]
    assert steps == sorted(steps) and steps[-1] == STEPS
    assert len(set(steps)) >= 3, f"expected several streamed updates, got steps {steps}"
    assert seen[-1]["state"] == "done" and seen[-1]["target"] == STEPS
    losses = [i["loss"] for i in training if i["loss"] is not None]
    assert losses and all(math.isfinite(x) for x in losses)
    assert 0.0 <= seen[-1]["accuracy"] <= 1.0


def test_cancelling_stops_the_run(client, served):
    _, ctx = served
    job = client.submit(*settings_args(steps=400, seed=3), api_name="/train")
    wait_until(lambda: any(i["step"] >= 2 for i in infos(job.outputs())), timeout=180,
               message="two training steps")
    run_id = infos(job.outputs())[-1]["run"]
    job.cancel()
    visitor = wait_until(lambda: next((v for v in list(ctx.runs._visitors.values())
                                       if v.run_id == run_id and not v.busy), None),
                         timeout=60, message="the run to stop")
    stopped_at = visitor.run.step_count
    time.sleep(3)
    assert visitor.run.step_count == stopped_at < 400
    assert ctx.runs.rotation()["active"] == 0 and visitor.turn is None  # its turn is free again


def test_two_clients_train_separate_runs_at_once(served):
    from gradio_client import Client
    url, ctx = served
    clients = [Client(url, verbose=False) for _ in range(2)]
    results: list = [None, None]

    def train(k):
        job = clients[k].submit(*settings_args(seed=10 + k), api_name="/train")
        results[k] = infos(list(job))

    threads = [threading.Thread(target=train, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=400)
    for c in clients:
        c.close()
    a, b = results
    assert a and b
    assert a[-1]["run"] != b[-1]["run"]  # different sessions, different runs
    for stream in (a, b):
        steps = [i["step"] for i in stream if i["state"] in ("training", "done")]
        assert steps[-1] == STEPS and steps == sorted(steps)  # independent counters: nobody reaches 8
        assert stream[-1]["state"] == "done"
    assert {a[-1]["seed"], b[-1]["seed"]} == {10, 11}


# -- the registry itself (no server) ----------------------------------------------------------
def make_registry(**overrides):
    from dataclasses import replace

    from ui.runs import RunRegistry
    from ui.settings import Settings
    clock = {"now": 5000.0}  # a monotonic clock does not start at 0
    registry = RunRegistry(replace(Settings(), **overrides), clock=lambda: clock["now"])
    return registry, clock


def test_slots_queue_in_order_and_refuse_when_full():
    from ui.runs import ServerBusy
    registry, _ = make_registry(max_concurrent_runs=1, queue_size=2)
    assert registry.try_slot("a") == 0
    assert registry.try_slot("b") == 1 and registry.try_slot("c") == 2
    assert registry.try_slot("b") == 1  # asking again keeps the place
    with pytest.raises(ServerBusy, match="full"):
        registry.try_slot("d")
    registry.leave("a")
    assert registry.try_slot("c") == 2  # not its turn: b is first in line
    assert registry.try_slot("b") == 0
    assert registry.load() == {"active": 1, "waiting": 1, "limit": 1, "visitors": 0}
    registry.leave("b")
    assert registry.try_slot("c") == 0


def test_idle_visitors_are_released_and_their_runs_freed():
    registry, clock = make_registry(idle_minutes=1)
    old = registry.visitor("old")
    old.run = object()
    busy = registry.visitor("busy")
    assert registry.begin(busy)
    clock["now"] += 120.0
    registry.visitor("new")  # meeting someone new sweeps the idle ones
    assert registry.peek("old") is None and old.run is None and old.stop.is_set()
    assert registry.peek("busy") is busy  # a visitor in the middle of training is kept
    assert registry.release("new") and registry.peek("new") is None


def test_finished_runs_go_sooner_than_runs_paused_half_way():
    from types import SimpleNamespace
    registry, clock = make_registry(idle_minutes=30, finished_idle_minutes=5)
    done = registry.visitor("done")
    done.run = SimpleNamespace(step_count=20, config=SimpleNamespace(steps=20))
    half = registry.visitor("half")
    half.run = SimpleNamespace(step_count=7, config=SimpleNamespace(steps=20))
    nothing = registry.visitor("nothing")
    clock["now"] += 6 * 60.0
    assert registry.sweep() == 2
    assert registry.peek("half") is half and registry.peek("done") is None and registry.peek("nothing") is None
    assert done.run is None and nothing.stop.is_set()
    clock["now"] += 30 * 60.0
    assert registry.sweep() == 1 and registry.peek("half") is None


def test_model_allow_list():
    from qgoft_core.explore.models import DEFAULT_MODEL_ID
    from ui.runs import ModelNotAllowed
    registry, _ = make_registry(allowed_models=["prajjwal1/bert-tiny"])
    assert registry.check_model("") == DEFAULT_MODEL_ID
    assert registry.check_model("default") == DEFAULT_MODEL_ID
    assert registry.check_model("prajjwal1/bert-tiny") == "prajjwal1/bert-tiny"
    with pytest.raises(ModelNotAllowed, match="not offered"):
        registry.check_model("/etc")
    open_registry, _ = make_registry(allowed_models=None)
    assert open_registry.check_model("gpt2") == "gpt2"


@pytest.mark.parametrize("server_name, opt_in, allowed", [
    (None, False, True), ("127.0.0.1", False, True), ("localhost", False, True), ("::1", False, True),
    ("0.0.0.0", False, False), ("0.0.0.0", True, True), ("my.host.example", False, False)])
def test_local_folders_only_on_localhost_or_when_the_operator_allows_them(server_name, opt_in, allowed,
                                                                         tmp_path):
    from qgoft_core.explore.models import DEFAULT_MODEL_ID
    from ui.runs import ModelNotAllowed
    registry, _ = make_registry(server_name=server_name, allow_local_models=opt_in)
    assert registry.check_model("") == DEFAULT_MODEL_ID  # the offline default always works
    assert registry.check_model("prajjwal1/bert-tiny") == "prajjwal1/bert-tiny"  # hub ids: the allow-list's call
    for folder in (str(tmp_path), "/etc", "./models/mine", "~/models", "../x"):
        if allowed:
            assert registry.check_model(folder) == folder
        else:
            with pytest.raises(ModelNotAllowed, match="Local folders cannot be loaded"):
                registry.check_model(folder)
    listed, _ = make_registry(server_name="0.0.0.0", allowed_models=[str(tmp_path)])
    assert listed.check_model(str(tmp_path)) == str(tmp_path)  # a folder the operator listed


def test_a_hosted_app_refuses_a_local_folder_over_the_api(tiny_base_dir):  # noqa: F811
    from gradio_client import Client
    demo, ctx = build_test_app(server_name="0.0.0.0", allow_local_models=False, max_steps=50)
    with launched(demo) as url:
        client = Client(url, verbose=False)
        try:
            args = (tiny_base_dir, "sentiment", "qgoft", "none", "all", 0.01, 0.002, 4, 2, 0)
            seen = infos(list(client.submit(*args, api_name="/train")))
        finally:
            client.close()
    assert seen[-1]["state"] == "error" and "Local folders cannot be loaded" in seen[-1]["message"]
    assert all(v.run is None for v in ctx.runs._visitors.values())


def test_throttle_keeps_drawing_within_its_budget():
    from ui.train.stream import Throttle
    now = {"t": 0.0}
    throttle = Throttle(min_interval=0.5, budget=0.05, clock=lambda: now["t"])
    assert throttle.due("loss")

    def slow_draw():
        now["t"] += 0.2  # a view that takes 0.2 s to draw
        return "figure"

    assert throttle.draw("loss", slow_draw) == "figure"
    now["t"] += 3.0
    assert not throttle.due("loss")  # 0.2 s / 5% = at most every 4 s
    now["t"] += 1.0
    assert throttle.due("loss")


def test_throttle_splits_the_servers_drawing_budget_among_the_visitors_drawing():
    """Thirty watchers together draw within the server's budget: each one's charts wait longer."""
    from ui.train.stream import SERVER_BUDGET, Throttle
    now, watchers = {"t": 0.0}, {"n": 1}
    throttle = Throttle(min_interval=0.5, budget=0.05, clock=lambda: now["t"], watchers=lambda: watchers["n"])

    def draw():
        now["t"] += 0.2
    for n in (1, 2, 6):  # few visitors: each keeps its own budget
        watchers["n"] = n
        assert throttle.budget == pytest.approx(0.05 if n * 0.05 <= SERVER_BUDGET else SERVER_BUDGET / n)
    watchers["n"] = 30
    assert 30 * throttle.budget == pytest.approx(SERVER_BUDGET)
    throttle.draw("snapshot", draw)
    wait = 0.2 / (SERVER_BUDGET / 30)  # a 0.2 s drawing waits SERVER_BUDGET/30 of the time when 30 draw at once
    now["t"] += wait - 0.1
    assert not throttle.due("snapshot")
    now["t"] += 0.2
    assert throttle.due("snapshot")


# -- exports (no server): every file, and the snippet really loads the adapter ----------------------
from pathlib import Path  # noqa: E402

from tests.conftest import make_run  # noqa: E402  (tiny_base_dir is a conftest fixture)


@pytest.mark.parametrize("method", ["goft", "lora", "head"])  # qGOFT loads through the same code as GOFT
def test_exports_and_the_loading_snippet(method, tiny_base_dir, tmp_path):  # noqa: F811
    """Every download is written, and the code snippet the page shows loads the adapter in a fresh
    Python process and classifies exactly like the run (it may merge the adapter into its own copy
    of the weights, which is why it runs in a process of its own)."""
    import json
    import os
    import subprocess
    import sys
    import zipfile

    import torch

    from ui import exports

    run = make_run(tiny_base_dir, method)
    for _ in run.run(steps=2):
        pass
    done = exports.export_run(run, tmp_path / "out")
    for path in (done.adapter_zip, done.metrics_csv, done.metrics_json, done.report_html):
        assert path.is_file() and path.stat().st_size > 0, path
    assert json.loads(done.metrics_json.read_text())["summary"]["steps_done"] == 2
    assert done.metrics_csv.read_text().splitlines()[0].startswith("step,loss")
    assert "<html" in done.report_html.read_text()[:200]
    assert (done.peft_oft_zip is not None) == (method == "goft")

    work = tmp_path / "work"
    with zipfile.ZipFile(done.adapter_zip) as zf:
        zf.extractall(work)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", done.snippet], cwd=work, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = eval(result.stdout.strip().splitlines()[-1])  # {label: probability}
    batch = run.base.tokenizer(["a wonderful, moving film"], return_tensors="pt", padding=True)
    with torch.no_grad():
        probs = run.tuned.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = {label: round(float(p), 3) for label, p in zip(run.task.label_names, probs.softmax(-1)[0])}
    assert printed == expected


def test_learning_rate_and_lambda_act_on_the_run_at_once(tiny_base_dir):  # noqa: F811
    from ui.train.session import apply_live_settings
    run = make_run(tiny_base_dir, "qgoft")
    assert apply_live_settings(run, 0.05, 0.3)
    assert run.config.lr == 0.05 and run.tuned.qgoft.config.reg_lambda == 0.3
    for bad in (("abc", 0.3), (5.0, 0.3), (0.01, -1), (float("nan"), 0.1)):
        assert not apply_live_settings(run, *bad)  # half-typed or out of range: nothing changes
    assert run.config.lr == 0.05 and run.config.reg_lambda == 0.3
    run.step()
    assert run.history.steps[-1]["lr"] == pytest.approx(0.05 / 2)  # warm-up: half the rate at step 1 of 2


def test_target_layer_groups(tiny_base_dir):  # noqa: F811
    from qgoft_core.explore.models import load_base
    from ui.train.controls import target_modules
    base = load_base(tiny_base_dir)
    assert target_modules(base, "all") is None
    attention, mlp = target_modules(base, "attention"), target_modules(base, "mlp")
    assert attention and all("attention" in n for n in attention)
    assert sorted(n.split("layer.0.")[1] for n in mlp) == ["intermediate.dense", "output.dense"]
    assert not set(attention) & set(mlp)


def test_warm_up_fills_the_caches_a_first_run_needs(tiny_base_dir, monkeypatch):  # noqa: F811
    # After the app's start-up warm-up, a visitor's first run reaches its first chart
    # (step-0 evaluation and snapshot) without running the encoder.
    from qgoft_core.explore import training
    from ui.runs import RunRegistry
    from ui.settings import Settings
    from ui.train.controls import Controls
    from ui.train.session import prepare_run, warm_up
    controls = Controls(model=tiny_base_dir, steps=2, batch_size=4)
    registry = RunRegistry(Settings())
    warm_up(registry, controls)
    calls = []
    original = training.TrainingRun._embed
    monkeypatch.setattr(training.TrainingRun, "_embed", lambda self, batch: calls.append(1) or original(self, batch))
    run, _ = prepare_run(registry, registry.visitor("first"), controls)
    record = run.evaluate()
    run.snapshot()
    assert calls == [] and 0.0 <= record["accuracy"] <= 1.0
