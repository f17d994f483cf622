"""Downloads of a visitor's run: adapter zip, metrics, HTML report, PEFT OFT export, code.

The files are written by ``qgoft_core.viz.report`` (the same writer the command
line uses) into one folder per visitor, which the registry deletes when the
visitor leaves. Each export replaces the previous one.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from qgoft_core import PeftExportError, export_peft_oft
from qgoft_core.explore.models import DEFAULT_MODEL_ID
from qgoft_core.viz.report import history_to_csv, history_to_records, run_report_html, save_trained_weights

EXPORT_ROOT = Path(tempfile.gettempdir()) / "qgoft-exports"  # served by Gradio (inside the temp dir)


@dataclass
class Export:
    """Paths of one export (None where a file does not apply) and the loading snippet."""

    adapter_zip: Path
    metrics_csv: Path
    metrics_json: Path
    report_html: Path
    peft_oft_zip: Optional[Path]
    snippet: str
    notes: list[str] = field(default_factory=list)


def run_stem(run) -> str:
    task = "".join(ch if ch.isalnum() else "-" for ch in str(run.task.name))[:40] or "task"
    return f"qgoft-{run.config.method}-{task}-step{run.step_count}"


def zip_folder(folder: Path, archive: Path, top: str) -> Path:
    """Zip `folder`'s files under one top folder `top/` (unzips into a folder, not loose files)."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
    return archive


def new_export_dir(run_id: str, previous: Optional[Path]) -> Path:
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    EXPORT_ROOT.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{run_id}-", dir=EXPORT_ROOT))


def export_run(run, out_dir: Path) -> Export:
    """Write every download of `run` into `out_dir`."""
    out_dir = Path(out_dir)
    stem = run_stem(run)
    adapter_dir = save_trained_weights(run, out_dir / stem)
    adapter_zip = zip_folder(adapter_dir, out_dir / f"{stem}-adapter.zip", stem)
    metrics_csv = out_dir / f"{stem}-metrics.csv"
    metrics_csv.write_text(history_to_csv(run), encoding="utf-8")
    metrics_json = out_dir / f"{stem}-metrics.json"
    metrics_json.write_text(json.dumps(history_to_records(run), indent=1, allow_nan=False), encoding="utf-8")
    report_html = out_dir / f"{stem}-report.html"
    report_html.write_text(run_report_html(run), encoding="utf-8")
    notes: list[str] = []
    peft_zip = None
    if run.config.method == "goft" and run.config.scaling is None and run.tuned.spec.givens:
        try:
            peft_dir = export_peft_oft(run.tuned.qgoft, out_dir / f"{stem}-peft-oft")
            peft_zip = zip_folder(peft_dir, out_dir / f"{stem}-peft-oft.zip", f"{stem}-peft-oft")
        except PeftExportError as exc:
            notes.append(f"No PEFT OFT export: {exc}")
    elif run.config.method == "goft":
        notes.append("The PEFT OFT export is offered for strict GOFT without scaling only.")
    return Export(adapter_zip, metrics_csv, metrics_json, report_html, peft_zip,
                  load_snippet(run, stem), notes)


def _base_argument(run) -> str:
    model_id = run.base.model_id
    return "" if model_id == DEFAULT_MODEL_ID else repr(model_id)


def load_snippet(run, folder: str) -> str:
    """Python that loads the downloaded adapter (unzipped into `folder`) and classifies a sentence."""
    method = run.config.method
    labels = list(run.task.label_names)
    head = (
        "# needs qgoft_core: run it in a checkout of qGOFT Explorer (pip install -e .)\n"
        "import torch\n"
        "from qgoft_core import share_base\n"
        "from qgoft_core.explore.models import SentenceClassifier, load_base\n\n"
        f"base = load_base({_base_argument(run)})  # the frozen base model ({run.base.model_id})\n"
        f"classifier = SentenceClassifier(share_base(base.encoder), num_labels={len(labels)}, "
        "pooling=base.pooling)\n"
    )
    if run.tuned.spec.givens:
        body = ("from qgoft_core import QGOFTModel\n"
                f"model = QGOFTModel.from_pretrained(classifier, {folder!r})  # the unzipped folder\n"
                "model.merge_adapter()  # optional: fold the rotations into the weights, no extra cost\n")
    elif method in ("lora", "oft", "boft"):
        body = ("from peft import PeftModel\n"
                f"model = PeftModel.from_pretrained(classifier, {folder!r})  # the unzipped folder\n")
    else:
        body = ("from safetensors.torch import load_file\n"
                f"classifier.load_state_dict(load_file({folder!r} + '/trainable.safetensors'), strict=False)\n"
                "model = classifier\n")
    tail = (
        "model.eval()\n\n"
        f"labels = {labels!r}\n"
        "batch = base.tokenizer([\"a wonderful, moving film\"], return_tensors=\"pt\", padding=True)\n"
        "with torch.no_grad():\n"
        "    probs = model(input_ids=batch[\"input_ids\"], attention_mask=batch[\"attention_mask\"])"
        ".logits.softmax(-1)\n"
        "print({label: round(float(p), 3) for label, p in zip(labels, probs[0])})\n"
    )
    return head + body + tail
