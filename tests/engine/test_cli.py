"""The command line: train -> outputs -> inspect round trip, the HTML report, one-line errors."""
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qgoft_core import cli
from qgoft_core.viz.report import run_report_html, write_run_outputs
from qgoft_core.explore.training import RunConfig, TrainingRun

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest

ROOT = Path(__file__).resolve().parents[2]
RUN_FIGURE_TITLES = ["Training curves", "Rotation angles per layer", "Rotation-angle histogram over time",
                     "Per-neuron norm change", "Orthogonality deviation per layer",
                     "Hyperspherical-energy drift per layer"]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_base_builder):
    """The tiny BERT + MiniLM tokenizer as a model folder, as a user would pass to --model."""
    base = tiny_base_builder()
    folder = tmp_path_factory.mktemp("tiny-model")
    base.encoder.save_pretrained(folder)
    base.tokenizer.save_pretrained(folder)
    return folder


def run_cli(argv, capsys) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own exits (usage errors, --help)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def plotly_divs(page: str) -> int:
    return page.count('class="plotly-graph-div"')


def test_train_then_inspect_round_trip(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(["train", "--model", tiny_model_dir, "--method", "qgoft", "--steps", 3,
                                    "--eval-every", 3, "--batch-size", 8, "--out", out], capsys)
    assert code == 0, stderr
    for name in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "metrics.jsonl",
                 "metrics.csv", "report.html"):
        assert (out / name).is_file(), name
        assert str(out / name.split("/")[0]) in stdout  # it says where everything went
    assert "held-out accuracy" in stdout and "3/3" in stderr  # summary and the progress bar

    rows = list(csv.DictReader(io.StringIO((out / "metrics.csv").read_text())))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3]
    assert rows[0]["loss"] == "" and rows[0]["eval_accuracy"] != ""  # the step-0 evaluation
    assert rows[1]["eval_accuracy"] == "" and rows[3]["eval_accuracy"] != ""
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "run" and events[0]["config"]["method"] == "qgoft"
    assert [e["event"] for e in events[1:]].count("step") == 3
    snapshot = [e for e in events if e["event"] == "snapshot"][-1]
    layer = next(iter(snapshot["layers"].values()))
    assert isinstance(layer["angles"], list) and len(layer["angles"]) == 31

    page = (out / "report.html").read_text()
    assert plotly_divs(page) == len(RUN_FIGURE_TITLES)
    for title in RUN_FIGURE_TITLES + ["Settings and result", "Per-layer summary", "trainable parameters"]:
        assert title in page, title

    html_out = tmp_path / "inspect.html"
    code, stdout, stderr = run_cli(["inspect", out, "--base", tiny_model_dir, "--html", html_out], capsys)
    assert code == 0, stderr
    assert "method: qGOFT" in stdout and "L1.mlp.out" in stdout and "HE drift" in stdout
    assert "Health flags" in stdout
    assert plotly_divs(html_out.read_text()) == 4


def test_report_of_a_method_without_angles_says_so(tiny_base, tmp_path):
    run = TrainingRun(RunConfig(method="lora", steps=2, eval_every=2, batch_size=8, eval_examples=16),
                      base=tiny_base)
    list(run.run())
    page = run_report_html(run)
    assert "has no per-pair Givens rotation angles" in page and "learns no rotation" in page
    assert plotly_divs(page) == 3  # loss curves, norm changes, energy drift
    for title in ("Training curves", "Per-neuron norm change", "Hyperspherical-energy drift per layer"):
        assert title in page, title
    from qgoft_core.viz.report import history_to_records
    json.dumps(history_to_records(run), allow_nan=False)  # LoRA's undefined orth dev is null, not NaN
    paths = write_run_outputs(run, tmp_path / "lora")
    assert "NaN" not in paths["metrics_jsonl"].read_text()
    assert (paths["adapter"] / "adapter_config.json").is_file()
    config = json.loads((paths["adapter"] / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["base_model_name_or_path"] == tiny_base.model_id


def test_report_and_exports_of_a_run_not_started_yet(tiny_base):
    run = TrainingRun(RunConfig(method="goft", batch_size=8, eval_examples=16), base=tiny_base)
    page = run_report_html(run, title="Before training")
    assert "<title>Before training</title>" in page and "No snapshot yet" in page
    assert plotly_divs(page) == 1  # the (empty) training curves
    from qgoft_core.viz.report import history_to_csv, history_to_records
    assert history_to_csv(run).splitlines() == [",".join(["step", "loss", "reg_loss", "lr", "sec_per_step",
                                                          "examples_per_sec", "eval_accuracy", "eval_loss",
                                                          "eval_cka"])]
    records = history_to_records(run)
    assert records["steps"] == records["evals"] == records["snapshots"] == []
    json.dumps(records, allow_nan=False)  # JSON-ready: no NaN, no numpy


def test_head_only_runs_save_their_tensors_and_inspect_refuses_them(tiny_base, tmp_path, capsys):
    run = TrainingRun(RunConfig(method="head", steps=1, eval_every=1, batch_size=8, eval_examples=16),
                      base=tiny_base)
    list(run.run())
    paths = write_run_outputs(run, tmp_path / "head")
    assert sorted(p.name for p in paths["adapter"].iterdir()) == ["trainable.safetensors",
                                                                  "trainable_info.json"]
    assert "learns no rotation" in paths["report"].read_text()
    code, _, stderr = run_cli(["inspect", paths["adapter"]], capsys)
    assert code == 2 and "adapter_config.json is missing" in stderr


@pytest.mark.parametrize("argv, message", [
    (["train", "--steps", "abc"], "invalid int value"),
    (["train", "--method", "sgd"], "invalid choice"),
    (["train", "--task", "sentiment", "--data", "x.csv"], "not allowed with argument"),
    (["train", "--lr", "0"], "learning rate must be a positive number"),
    (["train", "--lr", "nan"], "learning rate must be a positive number"),
    (["train", "--batch-size", "0"], "batch size must be between"),
    (["train", "--device", "tpu"], "is not a device"),
    (["train", "--data", "no-such-file.csv"], "file not found"),
    (["train", "--model", "no-such-org/no-such-model", "--out", "{tmp}/x"], "not available offline"),
    (["inspect", "{tmp}/nowhere"], "no such file or folder"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, tmp_path, capsys):
    code, stdout, stderr = run_cli([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert code == 2
    # Progress notes ("loading ...") may come first; the error itself is one line, the last one.
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and stderr.splitlines()[-1] == errors[0], stderr
    assert errors[0].startswith("qgoft") and message in errors[0] and "Traceback" not in stderr
    assert not (tmp_path / "x").exists()  # a failed start leaves no output folder behind


def test_existing_output_folder_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    code, _, stderr = run_cli(["train", "--out", tmp_path], capsys)
    assert code == 2 and "already holds files" in stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_bench_passes_its_arguments_through(capsys):
    code, stdout, _ = run_cli(["bench", "--help"], capsys)
    assert code == 0 and "usage: step_time" in stdout and "--methods" in stdout


@pytest.mark.parametrize("command", ["train", "inspect"])
def test_help_of_each_command(command, capsys):
    code, stdout, _ = run_cli([command, "--help"], capsys)
    assert code == 0 and f"usage: qgoft {command}" in stdout
    assert ("--reg-lambda" in stdout and "--eval-every" in stdout) if command == "train" else "--base" in stdout


def test_python_dash_m_exits_2_with_one_line_and_no_traceback():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "qgoft_core", "inspect", "/nonexistent/adapter"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["qgoft inspect: error: /nonexistent/adapter: no such file "
                                                  "or folder"]
