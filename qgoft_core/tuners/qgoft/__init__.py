from qgoft_core.tuners.qgoft.config import QGOFTConfig
from qgoft_core.tuners.qgoft.layer import QGOFTLayer
from qgoft_core.tuners.qgoft.model import QGOFTModel, get_qgoft_model, load_adapter, save_adapter, share_base

__all__ = ["QGOFTConfig", "QGOFTLayer", "QGOFTModel", "get_qgoft_model", "load_adapter", "save_adapter",
           "share_base"]
