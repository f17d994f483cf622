"""The command line: `python -m qgoft_core train | inspect | bench` (or `qgoft ...` once installed).

train    fine-tunes a base model on a built-in task or your own file and writes
         the adapter, metrics.jsonl, metrics.csv and report.html into a folder;
inspect  prints what a saved adapter (ours or PEFT LoRA/OFT/BOFT) has learned,
         per layer, with health flags, and can write an HTML report;
bench    times one training step of every method (benchmarks/step_time.py).

Every error the user can fix (a bad file, a bad setting, a model that is not
available offline) is one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A problem with what was asked for on the command line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _device(text: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use auto, cpu, cuda or cuda:N")
    return text


def build_parser() -> argparse.ArgumentParser:
    from qgoft_core.explore.registry import METHOD_SPECS, METHODS

    parser = _Parser(prog="qgoft", description="GOFT / qGOFT orthogonal fine-tuning from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,inspect,bench}",
                                     parser_class=_Parser)

    train = commands.add_parser(
        "train", help="fine-tune a model and write adapter, metrics and report",
        description="Fine-tune a sentence classifier with one method and write adapter/, metrics.jsonl, "
                    "metrics.csv and report.html into --out.")
    train.add_argument("--model", default=None,
                       help="hub id or local folder of the base model (default: the offline all-MiniLM-L6-v2)")
    data = train.add_mutually_exclusive_group()
    data.add_argument("--task", choices=("sentiment", "topic"), default=None,
                      help="a built-in task (default: sentiment)")
    data.add_argument("--data", metavar="FILE", default=None,
                      help="your own CSV / TSV / JSON Lines file with a text and a label column")
    train.add_argument("--text-column", default=None, help="text column of --data (default: detected)")
    train.add_argument("--label-column", default=None, help="label column of --data (default: detected)")
    methods = ", ".join(f"{m} = {s.label}" for m, s in METHOD_SPECS.items())
    train.add_argument("--method", choices=METHODS, default="qgoft", metavar="METHOD",
                       help=f"one of: {methods} (default: qgoft)")
    train.add_argument("--scaling", choices=("none", "output", "input"), default="none",
                       help="GOFT/qGOFT scales: output (per neuron, keeps angles), input (the paper's GOFT*)")
    train.add_argument("--reg-lambda", type=float, default=0.01,
                       help="qGOFT penalty weight λ on Σ<alpha, beta>² (perpendicular columns only; lengths free) "
                            "(default: 0.01)")
    lrs = ", ".join(f"{m} {s.default_lr:g}" for m, s in METHOD_SPECS.items())
    train.add_argument("--lr", type=float, default=None, help=f"learning rate (default per method: {lrs})")
    train.add_argument("--steps", type=int, default=60, help="optimizer steps (default: 60)")
    train.add_argument("--batch-size", type=int, default=16, help="examples per step (default: 16)")
    train.add_argument("--seed", type=int, default=0, help="head initialisation and data order (default: 0)")
    train.add_argument("--max-length", type=int, default=64, help="tokens per example (default: 64)")
    train.add_argument("--eval-every", type=int, default=10,
                       help="evaluate and snapshot the adapter every N steps (default: 10)")
    train.add_argument("--device", default="auto", type=_device,
                       help="auto (CUDA when available), cpu, cuda or cuda:N")
    train.add_argument("--out", metavar="DIR", default=None,
                       help="output folder (default: qgoft-runs/<method>-<task>-seed<seed>-<time>)")
    train.add_argument("--overwrite", action="store_true", help="write into --out even if it holds files")

    inspect = commands.add_parser(
        "inspect", help="per-layer table and health flags of a saved adapter",
        description="Inspect a qGOFT adapter or a PEFT LoRA / OFT / BOFT adapter (a folder or a .zip).")
    inspect.add_argument("path", metavar="DIR_OR_ZIP", help="adapter folder or .zip of one")
    inspect.add_argument("--base", default=None, metavar="MODEL",
                         help="also compare with the base model: 'default' (offline MiniLM), 'auto' (the base "
                              "the adapter records), a hub id or a folder")
    inspect.add_argument("--html", default=None, metavar="FILE", help="also write a self-contained HTML report")

    commands.add_parser("bench", add_help=False, help="time one training step per method "
                        "(benchmarks/step_time.py; `qgoft bench --help` shows its options)")
    return parser


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------
def _output_dir(args) -> Path:
    if args.out:
        out = Path(args.out)
    else:
        source = Path(args.data).stem if args.data else (args.task or "sentiment")
        out = Path("qgoft-runs") / f"{args.method}-{source}-seed{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise CliError(f"--out {out} already holds files; choose another folder or pass --overwrite")
    # Checked now, created only once there is something to write (a failed load leaves nothing).
    existing = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise CliError(f"cannot write --out {out}: {existing} is not a writable folder")
    return out


def _train(args) -> int:
    from tqdm import tqdm

    from qgoft_core.viz.report import write_run_outputs
    from qgoft_core.explore.training import RunConfig, TrainingDiverged, TrainingRun

    config = RunConfig(model=args.model, task=args.task or "sentiment", method=args.method,
                       scaling=None if args.scaling == "none" else args.scaling, reg_lambda=args.reg_lambda,
                       lr=args.lr, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                       max_length=args.max_length, eval_every=args.eval_every, device=args.device)
    config.validate()  # cheap checks before loading anything
    task = None
    if args.data:
        from qgoft_core.explore.data.user_files import load_text_file_with_report
        task, warnings = load_text_file_with_report(args.data, text_column=args.text_column,
                                                    label_column=args.label_column, seed=args.seed)
        for line in warnings[:5]:
            print(f"qgoft train: note: {line}", file=sys.stderr)
        if len(warnings) > 5:
            print(f"qgoft train: note: ... and {len(warnings) - 5} more", file=sys.stderr)
    out = _output_dir(args)
    print(f"loading {args.model or 'the default model (all-MiniLM-L6-v2)'} ...", file=sys.stderr)
    run = TrainingRun(config, task=task)
    trainable, total = run.trainable_parameters()
    print(f"{run.config.method}: {trainable:,} trainable of {total:,} parameters on {run.device_label()}",
          file=sys.stderr)

    failure, status, accuracy = None, 0, None
    bar = tqdm(total=config.steps, desc=config.method, unit="step", file=sys.stderr, dynamic_ncols=True)
    try:
        for kind, record in run.run():
            if kind == "eval":
                accuracy = record["accuracy"]
            if kind == "step":
                bar.update(1)
            if kind in ("step", "eval"):
                postfix = {"loss": f"{run.history.steps[-1]['loss']:.4f}"} if run.history.steps else {}
                if accuracy is not None:
                    postfix["acc"] = f"{100 * accuracy:.1f}%"
                bar.set_postfix(postfix)
    except TrainingDiverged as exc:
        failure, status = str(exc), EXIT_ERROR
    except KeyboardInterrupt:
        failure, status = f"interrupted at step {run.step_count}", EXIT_INTERRUPTED
    finally:
        bar.close()

    paths = write_run_outputs(run, out)
    evals = run.history.evals
    if evals:
        print(f"held-out accuracy: {100 * evals[0]['accuracy']:.1f}% before, "
              f"{100 * evals[-1]['accuracy']:.1f}% after {run.step_count} steps")
    for name, path in paths.items():
        print(f"{name}: {path}")
    if failure:
        print(f"qgoft train: error: {failure}; what was trained so far is in {out}", file=sys.stderr)
    return status


# ---------------------------------------------------------------------------
# inspect and bench
# ---------------------------------------------------------------------------
def _inspect(args) -> int:
    from qgoft_core.explore.analysis import inspect_adapter
    from qgoft_core.viz.inspection_figures import inspection_page

    report = inspect_adapter(args.path, base_model=args.base)
    print(report.to_text(), end="")
    if args.html:
        path = Path(args.html)
        try:
            path.write_text(inspection_page(report), encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write --html {path}: {exc.strerror or exc}") from None
        print(f"report: {path}")
    return 0


def _bench(argv: Sequence[str]) -> int:
    from qgoft_core.explore import step_time
    status = step_time.main(list(argv))
    return int(status or 0)


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------
def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is meant for the user (imported lazily: --help stays fast)."""
    from qgoft_core.io.adapter_files import AdapterFormatError
    from qgoft_core.explore.analysis import InspectionError
    from qgoft_core.explore.models import ModelLoadError
    from qgoft_core.io.peft_export import PeftExportError
    from qgoft_core.explore.training import TrainingConfigError
    from qgoft_core.explore.data.user_files import DataFileError
    return (CliError, TrainingConfigError, ModelLoadError, DataFileError, InspectionError,
            AdapterFormatError, PeftExportError)


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    try:
        if command == "bench":  # every option after "bench" belongs to the benchmark script
            return _bench(argv[1:])
        args = build_parser().parse_args(argv)
        return _train(args) if args.command == "train" else _inspect(args)
    except _user_errors() as exc:
        print(f"qgoft {command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except FileNotFoundError as exc:
        print(f"qgoft {command}: error: file not found: {exc.filename or exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"qgoft {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
