from .config import QGOFTConfig
from .layer import QGOFTLayer
from .model import QGOFTModel, get_qgoft_model, share_base

__all__ = ["QGOFTConfig", "QGOFTLayer", "QGOFTModel", "get_qgoft_model", "share_base"]
