"""Every fine-tuning method the engine can run, behind one small interface.

GOFT / qGOFT are ours; LoRA, OFT and BOFT are PEFT's own implementations (the
baselines are the real thing, not re-implementations); full fine-tuning and a
linear probe (head only) bracket them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from qgoft_core.metrics import torch_weight
from qgoft_core.tuners.qgoft import QGOFTConfig, QGOFTModel, get_qgoft_model, share_base
from qgoft_core.tuners.qgoft.layer import ADAPTABLE_TYPES, layer_shape
from qgoft_core.tuners.qgoft.targets import find_targets

METHODS = ("goft", "qgoft", "lora", "oft", "boft", "full", "head")
METHOD_LABELS = {
    "goft": "GOFT (strict Givens)",
    "qgoft": "qGOFT (quasi-Givens)",
    "lora": "LoRA (PEFT)",
    "oft": "OFT (PEFT)",
    "boft": "BOFT (PEFT)",
    "full": "full fine-tuning",
    "head": "head only (linear probe)",
}
HEAD = "head"


@dataclass
class MethodSettings:
    method: str = "qgoft"
    scaling: Optional[str] = None
    reg_lambda: float = 0.01
    target_modules: Optional[list[str] | str] = None
    lora_r: int = 8
    oft_block_size: int = 32
    oft_cayley_neumann: bool = True
    boft_block_size: int = 4
    boft_factors: int = 2
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")


class Tuned:
    """A trainable model plus what the engine needs to measure it."""

    def __init__(self, model: nn.Module, settings: MethodSettings, base_layers: dict[str, nn.Module]):
        self.model = model
        self.settings = settings
        self.method = settings.method
        # Frozen pretrained layers by name, for weight-level metrics.
        self.base_layers = base_layers

    @property
    def qgoft(self) -> Optional[QGOFTModel]:
        return self.model if isinstance(self.model, QGOFTModel) else None

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def trainable_count(self) -> tuple[int, int]:
        seen, trainable, total = set(), 0, 0
        for p in self.model.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
                trainable += p.numel() if p.requires_grad else 0
        return trainable, total

    def regularization_loss(self) -> torch.Tensor:
        if self.qgoft is not None:
            return self.qgoft.regularization_loss()
        return torch.zeros(())

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)

    def classifier(self) -> nn.Module:
        """The SentenceClassifier inside whatever wrapper the method uses."""
        m = self.model
        if isinstance(m, QGOFTModel):
            return m.base_model
        if hasattr(m, "get_base_model"):
            return m.get_base_model()
        return m

    @torch.no_grad()
    def tuned_weight(self, name: str) -> torch.Tensor:
        """The effective (out, in) weight of layer `name` after tuning, float64."""
        if self.qgoft is not None:
            return self.qgoft.adapter_layers()[name].merged_weight(torch.float64)
        layer = self.classifier().get_submodule(name)
        base = self.base_layers[name]
        if self.method == "full":
            return torch_weight(layer).double()
        if self.method == "head":
            return torch_weight(base).double()
        # A PEFT layer is affine in x: probing with the identity reads its weight.
        d, _ = layer_shape(base)
        eye = torch.eye(d, dtype=base.weight.dtype, device=base.weight.device)
        out = layer(eye)
        bias = getattr(base, "bias", None)
        if bias is not None:
            out = out - bias
        return out.double().T

    @torch.no_grad()
    def input_operator(self, name: str) -> Optional[torch.Tensor]:
        """The learned input-side operator M (y = base(x @ M)) for rotation methods."""
        if self.qgoft is not None:
            return self.qgoft.adapter_layers()[name].operator(torch.float64)
        if self.method == "oft":
            layer = self.classifier().get_submodule(name)
            d, _ = layer_shape(self.base_layers[name])
            return layer.oft_R["default"](torch.eye(d)).double()
        if self.method == "boft":
            layer = self.classifier().get_submodule(name)
            return layer.get_delta_weight("default")[0].detach().double()
        return None


def _peft_model(classifier: nn.Module, config) -> nn.Module:
    from peft import get_peft_model
    return get_peft_model(classifier, config)


def build_tuned(classifier: nn.Module, settings: MethodSettings) -> Tuned:
    """Wrap a per-run SentenceClassifier (shared frozen backbone) for `settings.method`."""
    targets = find_targets(classifier.backbone, settings.target_modules)
    full_targets = [f"backbone.{t}" for t in targets]
    base_layers = {name: classifier.get_submodule(name) for name in full_targets}
    method = settings.method
    if method in ("goft", "qgoft"):
        config = QGOFTConfig(method=method, scaling=settings.scaling, reg_lambda=settings.reg_lambda,
                             target_modules=full_targets, modules_to_save=[HEAD])
        model = get_qgoft_model(classifier, config)
    elif method == "lora":
        from peft import LoraConfig
        model = _peft_model(classifier, LoraConfig(r=settings.lora_r, lora_alpha=2 * settings.lora_r,
                                                   lora_dropout=0.0, target_modules=full_targets,
                                                   modules_to_save=[HEAD]))
    elif method == "oft":
        from peft import OFTConfig
        model = _peft_model(classifier, OFTConfig(r=0, oft_block_size=settings.oft_block_size,
                                                  use_cayley_neumann=settings.oft_cayley_neumann,
                                                  module_dropout=0.0, target_modules=full_targets,
                                                  modules_to_save=[HEAD]))
    elif method == "boft":
        from peft import BOFTConfig
        model = _peft_model(classifier, BOFTConfig(boft_block_size=settings.boft_block_size,
                                                   boft_n_butterfly_factor=settings.boft_factors,
                                                   boft_dropout=0.0, target_modules=full_targets,
                                                   modules_to_save=[HEAD]))
    elif method == "full":
        # Full fine-tuning changes every weight: it gets its own copy of the base.
        model = copy.deepcopy(classifier)
        for p in model.parameters():
            p.requires_grad_(True)
        base_layers = {name: classifier.get_submodule(name) for name in full_targets}
    else:  # head only
        model = classifier
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(HEAD + "."))
    return Tuned(model, settings, base_layers)


def adaptable_layer_names(backbone: nn.Module) -> list[str]:
    return [n for n, m in backbone.named_modules() if isinstance(m, ADAPTABLE_TYPES)]


def new_classifier(backbone: nn.Module, num_labels: int, pooling: str, seed: int) -> nn.Module:
    """A per-run classifier: the shared frozen backbone and a freshly seeded head."""
    from qgoft_core.explore.models import SentenceClassifier
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = SentenceClassifier(share_base(backbone), num_labels, pooling)
    return classifier
