"""A visitor's run: reuse it or build a new one for the controls, change it live, warm the caches.

Runs are built on the shared frozen base (``load_base``); the layer energies of
that base are shared too, through the registry (``RunRegistry.base_energy_cache``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from qgoft_core.explore.models import load_base
from qgoft_core.explore.registry import GIVENS_METHODS
from qgoft_core.explore.training import STEP_CAP, RunConfig, TrainingConfigError, TrainingRun

from ui import memory
from ui.runs import RunRegistry, Visitor
from ui.train import earlier
from ui.train.controls import UPLOADED, SCALING_VALUES, Controls, structure_key, target_modules, task_for
from ui.zerogpu import run_device


def prepare_run(registry: RunRegistry, visitor: Visitor, controls: Controls) -> tuple[TrainingRun, str]:
    """The visitor's run for these settings: the current one (with lr, lambda, steps applied) or a new one.

    A new run replaces the current one, which is kept (if it trained) to be drawn beside the new
    one (``ui.train.earlier``): only its curves and numbers, not its model.
    Raises TrainingConfigError / ModelLoadError / ModelNotAllowed with a message for the page.
    """
    settings = registry.settings
    if controls.steps > settings.max_steps:
        raise TrainingConfigError(f"{controls.steps} steps is above this server's limit of "
                                  f"{settings.max_steps} steps per run")
    key = structure_key(controls, visitor)
    run = visitor.run
    if run is not None and visitor.run_key == key:
        _apply_live(run, controls)
        return run, ""
    model_id = registry.check_model(controls.model)
    new_run = build_run(registry, model_id, controls, task_for(controls, visitor), settings.max_steps)
    if controls.task == UPLOADED:  # the visitor's own data: what it puts in the caches goes when they do
        visitor.data_keys |= memory.data_keys(new_run)
    kept, dropped = earlier.shelf(visitor).keep(run)
    notes = ["Settings changed: this is a new run from step 0." if run is not None else "",
             earlier.kept_note(kept, dropped), sample_note(new_run)]
    visitor.run, visitor.run_key, visitor.run_seconds = new_run, key, 0.0
    return new_run, "\n\n".join(n for n in notes if n)


def sample_note(run: TrainingRun) -> str:
    """What the page says when live evaluations use a sample of the held-out split."""
    sampled, total = len(run.test_data.ids), getattr(run, "held_out_total", len(run.test_data.ids))
    if sampled >= total:
        return ""
    return (f"Live held-out accuracy and loss are measured on a fixed sample of {sampled:,} of the "
            f"{total:,} held-out examples (the same sample at every step).")


def build_run(registry: RunRegistry, model_id: str, controls: Controls, task, max_steps: int) -> TrainingRun:
    """A fresh run for these settings on the shared base, with the base's layer energies shared too."""
    base = load_base(model_id)
    scaling = SCALING_VALUES.get(controls.scaling, controls.scaling)
    config = RunConfig(model=model_id, task=task.name, method=controls.method,
                       scaling=scaling if controls.method in GIVENS_METHODS else None,
                       reg_lambda=controls.lam, target_modules=target_modules(base, controls.layers),
                       lr=controls.lr, steps=controls.steps, batch_size=controls.batch_size, seed=controls.seed,
                       device=run_device(), max_steps=max_steps, eval_sample=registry.settings.eval_sample or None)
    try:
        run = TrainingRun(config, task=task, base=base)
    except ValueError as exc:  # e.g. a target that is not a linear layer
        if isinstance(exc, TrainingConfigError):
            raise
        raise TrainingConfigError(str(exc)) from None
    # The energies of the frozen base weights are the same for every run on this base: compute them once.
    run.energy_cache = registry.base_energy_cache(model_id, run.energy_cache)
    return run


def warm_up(registry: RunRegistry, controls: Controls = Controls()) -> None:
    """Do once, before anyone presses Train, what every first run on these settings needs.

    Loads the base, tokenises the task, and fills the caches shared by all runs on this
    base: the base's held-out embeddings (step-0 evaluation, kept by the engine) and its
    layer energies (kept by `registry`). The warm-up run itself is thrown away, so it
    takes the engine's default step cap.
    """
    from qgoft_core.explore import caches
    from qgoft_core.explore.data.tasks import load_builtin_task
    from qgoft_core.explore.models import DEFAULT_MODEL_ALIASES, DEFAULT_MODEL_ID
    run = build_run(registry, controls.model, controls, load_builtin_task(controls.task), STEP_CAP)
    run.layer_metrics()
    if run.base.model_id == DEFAULT_MODEL_ID or controls.model in DEFAULT_MODEL_ALIASES:
        # Every visitor's first run: the default task on the default model stays whatever the budgets.
        keys = memory.data_keys(run)
        for key in keys:
            caches.ENCODED_SPLITS.pin(key)
        caches.BASE_EMBEDDINGS.pin_where(lambda k: isinstance(k, tuple) and len(k) > 2 and k[2] in keys)


def _apply_live(run: TrainingRun, controls: Controls) -> None:
    """Learning rate, lambda and the step target change the current run in place (no restart)."""
    probe = replace(run.config, lr=controls.lr, reg_lambda=controls.lam, steps=controls.steps)
    probe.validate()
    run.config = probe
    if run.tuned.spec.givens:
        run.tuned.qgoft.config.reg_lambda = float(controls.lam)


def live_settings_apply(visitor: Visitor, controls: Controls) -> bool:
    """Whether the page's learning rate and λ belong to the visitor's run: not once another method
    (or any setting that makes a new run) is chosen, since those values are then the new run's."""
    return visitor.run is not None and visitor.run_key == structure_key(controls, visitor)


def apply_live_settings(run: TrainingRun, lr: Any, lam: Any) -> bool:
    """Set a run's learning rate and lambda now (the next step uses them); False if they are invalid."""
    try:
        lr, lam = float(lr), float(lam)
        probe = replace(run.config, lr=lr, reg_lambda=lam)
        probe.validate()
    except (TypeError, ValueError):
        return False  # half-typed or out of range: the run keeps what it had
    run.config = probe
    if run.tuned.spec.givens:
        run.tuned.qgoft.config.reg_lambda = lam
    return True


def use_cpu_threads(registry: RunRegistry) -> int:
    """Set the calling thread's torch CPU threads to its share of the cores, and return how many.

    The app's training no longer calls this: its workers get their threads from the scheduler
    (ui/scheduler.py). Kept for callers that train on a thread of their own (benchmarks): the
    cores (``Settings.cores()``) shared among the runs in the rotation, at least one.
    """
    from qgoft_core.explore.training import configure_cpu_threads
    active = max(1, registry.scheduler.active())
    return configure_cpu_threads(max(1, registry.settings.cores() // active))
