"""Hand a strict GOFT adapter to stock PEFT users as an OFT adapter.

A GOFT operator M is orthogonal, so it is the exact Cayley transform of a
skew-symmetric Q: PEFT OFT computes R = (I - Q)(I + Q)^-1 and applies x @ R on
the input side, like we do; hence Q = (I + M)^-1 (I - M). One OFT block of
size d per layer (r = 1) holds it, with the Neumann approximation switched off
so that PEFT evaluates the Cayley transform exactly.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

if TYPE_CHECKING:  # io knows files, not models: a QGOFTModel is only read through its methods
    from qgoft_core.tuners.qgoft.model import QGOFTModel


class PeftExportError(ValueError):
    """The adapter cannot be written as a PEFT OFT adapter; the message says why."""


def cayley_generator(operator: torch.Tensor) -> torch.Tensor:
    """Skew-symmetric Q with (I - Q)(I + Q)^-1 = M, for orthogonal M."""
    m = operator.to(torch.float64)
    eye = torch.eye(m.shape[0], dtype=m.dtype, device=m.device)
    # An eigenvalue of M at -1 (an angle at +-pi) makes I + M singular.
    smallest = torch.linalg.svdvals(eye + m).min()
    if smallest < 1e-6:
        raise PeftExportError("the rotation has an eigenvalue at -1 (an angle at +-pi); the Cayley "
                              "form used by PEFT OFT cannot express it")
    q = torch.linalg.solve(eye + m, eye - m)
    return 0.5 * (q - q.T)  # remove round-off asymmetry


def export_peft_oft(model: QGOFTModel, directory) -> Path:
    """Write `model`'s strict, unscaled GOFT adapter as a stock PEFT OFT adapter."""
    from peft import OFTConfig

    cfg = model.config
    if cfg.method != "goft":
        raise PeftExportError("only strict GOFT converts to PEFT OFT: qGOFT blocks are not orthogonal, "
                              "so no OFT rotation reproduces them")
    if cfg.scaling is not None:
        raise PeftExportError(f"scaling={cfg.scaling!r} has no PEFT OFT counterpart; export an unscaled "
                              "GOFT adapter")
    tensors: dict[str, torch.Tensor] = {}
    for name, layer in model.adapter_layers().items():
        if layer.is_conv1d:
            raise PeftExportError(f"layer {name} is a Conv1D; PEFT OFT export supports nn.Linear only")
        q = cayley_generator(layer.operator(torch.float64))
        rows, cols = torch.triu_indices(layer.in_features, layer.in_features, 1)
        tensors[f"base_model.model.{name}.oft_R.weight"] = q[rows, cols].float().unsqueeze(0).contiguous()
    for name, wrapper in model.saved_modules().items():
        for pname, p in wrapper.trained_module.state_dict().items():
            tensors[f"base_model.model.{name}.{pname}"] = p.detach().cpu().contiguous()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    peft_config = OFTConfig(
        r=1, oft_block_size=0, target_modules=sorted(model.adapter_layers()),
        modules_to_save=list(model.saved_modules()) or None, use_cayley_neumann=False,
        module_dropout=0.0, base_model_name_or_path=cfg.base_model_name_or_path,
    )
    peft_config.save_pretrained(str(directory))
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    return directory
