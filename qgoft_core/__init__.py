"""qgoft_core: GOFT / qGOFT orthogonal fine-tuning adapters, metrics and tools.

The adapter library (ops/, tuners/, io/, metrics) needs only torch, transformers
and safetensors; the explorer engine (explore/) and its views (viz/) sit on top
of it and are imported only when used. The public names below load their module
on first use, so that `import qgoft_core` (e.g. to read the built-in tasks) stays
light and torch is imported only by what needs it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from qgoft_core._version import __version__

# public name -> module that defines it
_EXPORTS = {
    **dict.fromkeys(("AdapterFormatError", "BaseModelMismatchError", "MissingKeysError", "NotSafetensorsError",
                     "ShapeMismatchError", "UnexpectedKeysError", "UnknownMethodError"),
                    "qgoft_core.io.adapter_files"),
    **dict.fromkeys(("PeftExportError", "export_peft_oft"), "qgoft_core.io.peft_export"),
    **dict.fromkeys(("num_levels", "stage_plans", "tree_pairs"), "qgoft_core.ops.layout"),
    **dict.fromkeys(("GivensTree", "givens_table", "quasi_table"), "qgoft_core.ops.rotation"),
    **dict.fromkeys(("QGOFTConfig", "QGOFTLayer", "QGOFTModel", "get_qgoft_model", "load_adapter",
                     "save_adapter", "share_base"), "qgoft_core.tuners.qgoft"),
    "count_parameters": "qgoft_core.tuners.utils",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qgoft_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from qgoft_core.io.adapter_files import (AdapterFormatError, BaseModelMismatchError, MissingKeysError,
                                             NotSafetensorsError, ShapeMismatchError, UnexpectedKeysError,
                                             UnknownMethodError)
    from qgoft_core.io.peft_export import PeftExportError, export_peft_oft
    from qgoft_core.ops.layout import num_levels, stage_plans, tree_pairs
    from qgoft_core.ops.rotation import GivensTree, givens_table, quasi_table
    from qgoft_core.tuners.qgoft import (QGOFTConfig, QGOFTLayer, QGOFTModel, get_qgoft_model, load_adapter,
                                         save_adapter, share_base)
    from qgoft_core.tuners.utils import count_parameters
