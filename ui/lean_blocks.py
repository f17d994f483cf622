"""Gradio's per-update overheads that a class of thirty pays thirty times.

Measured with py-spy on the app serving 30 visitors (benchmarks/visitors.py), two costs of
Gradio 6 took a third of the server's CPU, more than the training steps of the runs' adapters:

1. **"No change" rebuilt every component.** An event with many outputs that yields a dict
   naming only some of them gets ``gr.skip()`` (``{"__type__": "update"}``) for the others, and
   Gradio treats that empty update like any property update: it constructs a new component
   (with a random id from ``secrets``) and rebuilds its config, JSON schema included (pydantic),
   twice. Train's live stream has seventeen outputs and yields a keep-alive tick every second,
   so each watcher rebuilt about seventeen components a second for nothing. ``LeanBlocks``
   passes an empty update straight through: the page receives the same ``{"__type__":
   "update"}`` (no change) and the session state, which the update would not have changed,
   is left as it was.
2. **Failed imports on every event.** Gradio probes for matplotlib (around every event) and
   bokeh (in each plot's config) with ``import`` inside ``try``; a module that is not installed
   is searched for on the whole ``sys.path`` each time. ``skip_absent_imports`` records the
   absent ones once in ``sys.modules`` as ``None``, which Python's import system reads as
   "not available" (the import raises ImportError at once, ``importlib.util.find_spec`` returns
   None). A module that is installed is never touched.
"""
from __future__ import annotations

import importlib.util
import sys
from typing import Any, Iterable

import gradio as gr
from gradio.components.base import _Keywords

# Optional modules Gradio tries to import on every event or every plot update.
PROBED_OPTIONAL_MODULES = ("matplotlib", "bokeh")


def is_empty_update(value: Any) -> bool:
    """``gr.skip()`` / ``gr.update()`` with no properties: the component does not change."""
    return isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1


class LeanBlocks(gr.Blocks):
    """``gr.Blocks`` whose empty updates cost nothing (see the module's docstring).

    Only outputs whose update is empty are short-cut; values and real property updates
    go through Gradio's own postprocessing unchanged.
    """

    async def postprocess_data(self, block_fn, predictions, state):
        outputs = list(block_fn.outputs)
        if len(outputs) < 2 or block_fn.is_validator_function:
            return await super().postprocess_data(block_fn, predictions, state)
        if isinstance(predictions, dict):
            if is_empty_update(predictions):
                predictions = [gr.skip() for _ in outputs]
            elif predictions and all(isinstance(key, gr.blocks.Block) for key in predictions):
                predictions = gr.blocks.convert_component_dict_to_list(outputs, predictions)
        if not isinstance(predictions, (list, tuple)):
            return await super().postprocess_data(block_fn, predictions, state)
        # State outputs keep Gradio's own path: it stores nothing and rebuilds nothing for them.
        empty = [i for i, value in enumerate(predictions)
                 if i < len(outputs) and not outputs[i].stateful and is_empty_update(value)]
        if not empty:
            return await super().postprocess_data(block_fn, predictions, state)
        passed = list(predictions)
        for i in empty:
            passed[i] = _Keywords.FINISHED_ITERATING  # Gradio's own "leave this output alone"
        output = await super().postprocess_data(block_fn, passed, state)
        for i in empty:
            if i < len(output):
                output[i] = {"__type__": "update"}
        return output


def skip_absent_imports(names: Iterable[str] = PROBED_OPTIONAL_MODULES) -> list[str]:
    """Mark the modules of `names` that are not installed as absent, once; returns those marked."""
    marked = []
    for name in names:
        if name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not available"
            marked.append(name)
    return marked
