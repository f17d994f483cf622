"""qgoft_core: GOFT / qGOFT orthogonal fine-tuning adapters, metrics and tools.

The library never imports Gradio; the app and the command line build on it.
"""
from qgoft_core._version import __version__
from qgoft_core.io.adapter_files import (AdapterFormatError, BaseModelMismatchError, MissingKeysError,
                                         NotSafetensorsError, ShapeMismatchError, UnexpectedKeysError,
                                         UnknownMethodError)
from qgoft_core.io.peft_export import PeftExportError, export_peft_oft
from qgoft_core.ops.layout import num_levels, stage_plans, tree_pairs
from qgoft_core.ops.rotation import GivensTree, givens_table, quasi_table
from qgoft_core.tuners.qgoft import (QGOFTConfig, QGOFTLayer, QGOFTModel, get_qgoft_model, load_adapter,
                                     save_adapter, share_base)
from qgoft_core.tuners.utils import count_parameters

__all__ = [
    "AdapterFormatError", "BaseModelMismatchError", "GivensTree", "MissingKeysError",
    "NotSafetensorsError", "PeftExportError", "QGOFTConfig", "QGOFTLayer", "QGOFTModel",
    "ShapeMismatchError", "UnexpectedKeysError", "UnknownMethodError", "count_parameters",
    "export_peft_oft", "get_qgoft_model", "givens_table", "load_adapter", "num_levels", "quasi_table",
    "save_adapter", "share_base", "stage_plans", "tree_pairs",
]
