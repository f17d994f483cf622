"""qgoft_core: GOFT / qGOFT orthogonal fine-tuning adapters, metrics and tools.

The library never imports Gradio; the app and the command line build on it.
"""
__version__ = "0.1.0"

from qgoft_core.io.adapter_files import (AdapterFormatError, BaseModelMismatchError, MissingKeysError,
                            NotSafetensorsError, ShapeMismatchError, UnexpectedKeysError,
                            UnknownMethodError, load_adapter, save_adapter)
from qgoft_core.io.peft_export import PeftExportError, export_peft_oft
from qgoft_core.ops.layout import num_levels, stage_plans, tree_pairs
from qgoft_core.ops.rotation import GivensTree, givens_table, quasi_table
from qgoft_core.tuners.qgoft import QGOFTConfig, QGOFTLayer, QGOFTModel, get_qgoft_model, share_base

__all__ = [
    "AdapterFormatError", "BaseModelMismatchError", "GivensTree", "MissingKeysError",
    "NotSafetensorsError", "PeftExportError", "export_peft_oft", "QGOFTConfig", "QGOFTLayer", "QGOFTModel", "ShapeMismatchError",
    "UnexpectedKeysError", "UnknownMethodError", "get_qgoft_model", "givens_table", "load_adapter",
    "num_levels", "quasi_table", "save_adapter", "share_base", "stage_plans", "tree_pairs",
]
