"""A run's trainable model behind one small interface, whatever the method.

Which methods exist, and how each wraps a classifier, is described once in
`registry`; this module holds the per-run settings and the `Tuned` wrapper the
engine measures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from qgoft_core.metrics import torch_weight
from qgoft_core.explore.registry import HEAD, METHODS, MethodSpec, method_spec
from qgoft_core.tuners.qgoft import QGOFTModel, share_base
from qgoft_core.tuners.utils import count_parameters
from qgoft_core.tuners.qgoft.layer import ADAPTABLE_TYPES, layer_shape
from qgoft_core.tuners.qgoft.targets import find_targets

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
        method_spec(self.method)  # a clear error for an unknown method


class Tuned:
    """A trainable model plus what the engine needs to measure it."""

    def __init__(self, model: nn.Module, settings: MethodSettings, base_layers: dict[str, nn.Module]):
        self.model = model
        self.settings = settings
        self.method = settings.method
        self.spec: MethodSpec = method_spec(settings.method)
        # Frozen pretrained layers by name, for weight-level metrics.
        self.base_layers = base_layers

    @property
    def qgoft(self) -> Optional[QGOFTModel]:
        return self.model if isinstance(self.model, QGOFTModel) else None

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def trainable_count(self) -> tuple[int, int]:
        return count_parameters(self.model)

    def regularization_loss(self) -> torch.Tensor:
        if self.spec.givens:
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
        if self.spec.givens:
            return self.qgoft.adapter_layers()[name].merged_weight(torch.float64)
        layer = self.classifier().get_submodule(name)
        base = self.base_layers[name]
        if self.spec.family == "full":
            return torch_weight(layer).double()
        if self.spec.family == "head":
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
        if self.spec.givens:
            return self.qgoft.adapter_layers()[name].operator(torch.float64)
        if self.method == "oft":
            layer = self.classifier().get_submodule(name)
            d, _ = layer_shape(self.base_layers[name])
            return layer.oft_R["default"](torch.eye(d)).double()
        if self.method == "boft":
            layer = self.classifier().get_submodule(name)
            return layer.get_delta_weight("default")[0].detach().double()
        return None


def build_tuned(classifier: nn.Module, settings: MethodSettings) -> Tuned:
    """Wrap a per-run SentenceClassifier (shared frozen backbone) for `settings.method`."""
    targets = find_targets(classifier.backbone, settings.target_modules)
    full_targets = [f"backbone.{t}" for t in targets]
    base_layers = {name: classifier.get_submodule(name) for name in full_targets}
    model = method_spec(settings.method).build(classifier, settings, full_targets)
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
