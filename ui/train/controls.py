"""The Train tab's settings as the page sends them, and what they select (task, target layers)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from qgoft_core.explore.models import DEFAULT_MODEL_ID
from qgoft_core.explore.training import TrainingConfigError
from qgoft_core.tuners.qgoft.targets import find_targets

from ui.runs import Visitor

UPLOADED = "uploaded"  # the task value that means "the visitor's own data set"
LAYER_GROUPS = {"all": "all attention and MLP layers", "attention": "attention only", "mlp": "MLP only"}
SCALING_VALUES = {"none": None, "output": "output", "input": "input"}


@dataclass(frozen=True)
class Controls:
    """The Train tab's settings, as the page sends them."""

    model: str = DEFAULT_MODEL_ID
    task: str = "sentiment"
    method: str = "qgoft"
    scaling: str = "none"
    layers: str = "all"
    lam: float = 0.01
    lr: float = 2e-3
    batch_size: int = 16
    steps: int = 60
    seed: int = 0

    @classmethod
    def from_inputs(cls, model, task, method, scaling, layers, lam, lr, batch_size, steps, seed) -> "Controls":
        def number(value, name, kind=float):
            try:
                result = kind(value)
            except (TypeError, ValueError):
                raise TrainingConfigError(f"{name} must be a number, got {value!r}") from None
            if not math.isfinite(float(result)):
                raise TrainingConfigError(f"{name} must be a finite number, got {value!r}")
            return result

        return cls(model=str(model or DEFAULT_MODEL_ID).strip(), task=str(task or "sentiment"),
                   method=str(method or "qgoft"), scaling=str(scaling or "none"), layers=str(layers or "all"),
                   lam=number(lam, "lambda"), lr=number(lr, "learning rate"),
                   batch_size=int(number(batch_size, "batch size")), steps=int(number(steps, "steps")),
                   seed=int(number(seed, "seed")))


def is_attention_layer(name: str) -> bool:
    """Attention projections by their module path (BERT, GPT-2, LLaMA-style, DistilBERT, MPNet)."""
    return any("attn" in part or "attention" in part for part in name.lower().split("."))


def target_modules(base, group: str) -> Optional[list[str]]:
    """The backbone layers of a layer group: None = the default (all attention and MLP layers)."""
    if group not in LAYER_GROUPS:
        raise TrainingConfigError(f"unknown layer group {group!r}; choose one of {', '.join(LAYER_GROUPS)}")
    if group == "all":
        return None
    names = find_targets(base.encoder, None)
    chosen = [n for n in names if is_attention_layer(n) == (group == "attention")]
    if not chosen:
        raise TrainingConfigError(f"this model has no {LAYER_GROUPS[group]} layers to adapt")
    return chosen


def structure_key(controls: Controls, visitor: Visitor) -> tuple:
    """Settings that need a new run when they change (lr, lambda and steps apply to the current one).
    The seed is last (``handlers.new_seed`` replaces it)."""
    task = ("uploaded", id(visitor.uploaded)) if controls.task == UPLOADED else controls.task
    return (controls.model, task, controls.method, controls.scaling, controls.layers, controls.batch_size,
            controls.seed)


def task_for(controls: Controls, visitor: Visitor):
    """The TextTask the controls select: a built-in task, or the visitor's uploaded data set."""
    if controls.task == UPLOADED:
        if visitor.uploaded is None:
            raise TrainingConfigError("no uploaded data set: upload a CSV or JSONL file first, or pick a "
                                      "built-in task")
        return visitor.uploaded
    from qgoft_core.explore.data.tasks import BUILTIN_TASKS, load_builtin_task
    if controls.task not in BUILTIN_TASKS:
        raise TrainingConfigError(f"unknown task {controls.task!r}; choose one of {', '.join(BUILTIN_TASKS)}")
    return load_builtin_task(controls.task)
