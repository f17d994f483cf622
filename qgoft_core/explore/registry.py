"""Every fine-tuning method the explorer knows, described once.

A `MethodSpec` says what a method is called, how it is drawn, which learning rate
it starts from, how a model is wrapped for it and what it can report. Menus,
charts, the engine, comparisons, inspection and the step-time benchmark all read
this table; adding a method means adding one entry here (and its builder).

GOFT / qGOFT are ours; LoRA, OFT and BOFT are PEFT's own implementations (the
baselines are the real thing, not re-implementations); full fine-tuning and a
linear probe (head only) bracket them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional

if TYPE_CHECKING:  # torch is loaded with the builders, not with the table
    from torch import nn

    from qgoft_core.explore.methods import MethodSettings

HEAD = "head"  # the classifier head's attribute name in SentenceClassifier

Family = Literal["givens", "peft", "full", "head"]


@dataclass(frozen=True)
class MethodSpec:
    """One method: names, colour, defaults, builder and what it can report."""

    key: str
    label: str  # long: menus, titles, reports
    short: str  # short: table cells, legends, inspection
    color: str  # one colour per method on every chart
    default_lr: float  # rotation-sized for Givens methods (10-100x LoRA's, as in the paper)
    family: Family
    rotation: bool  # learns an input-side operator M whose orthogonality deviation is measured
    peft_type: Optional[str] = None  # PEFT's `peft_type` in adapter files of this method
    build: Optional[Callable[..., "nn.Module"]] = None  # (classifier, settings, targets) -> trainable model
    penalty: bool = False  # adds a regulariser to the loss (qGOFT: λ·Σ⟨α, β⟩²)

    @property
    def givens(self) -> bool:
        """Ours: per-pair Givens angles (GOFT) or 2 x 2 blocks (qGOFT) in a `QGOFTModel`."""
        return self.family == "givens"

    @property
    def has_angles(self) -> bool:
        """Snapshots hold a rotation angle per Givens pair (the angle charts need them)."""
        return self.givens


# -- builders: wrap a per-run classifier (shared frozen backbone) for one method ----------
def peft_config(key: str, settings: "MethodSettings", targets: list[str],
                modules_to_save: Optional[list[str]] = None) -> Any:
    """PEFT's config for a PEFT baseline: the one place its hyperparameters are set."""
    import peft

    if key == "lora":  # alpha = 2r: PEFT's usual choice, scale alpha / r = 2
        return peft.LoraConfig(r=settings.lora_r, lora_alpha=2 * settings.lora_r, lora_dropout=0.0,
                               target_modules=targets, modules_to_save=modules_to_save)
    if key == "oft":
        return peft.OFTConfig(r=0, oft_block_size=settings.oft_block_size,
                              use_cayley_neumann=settings.oft_cayley_neumann, module_dropout=0.0,
                              target_modules=targets, modules_to_save=modules_to_save)
    if key == "boft":
        return peft.BOFTConfig(boft_block_size=settings.boft_block_size,
                               boft_n_butterfly_factor=settings.boft_factors, boft_dropout=0.0,
                               target_modules=targets, modules_to_save=modules_to_save)
    raise ValueError(f"{key!r} is not a PEFT method")


def _build_givens(classifier: "nn.Module", settings: "MethodSettings", targets: list[str]) -> "nn.Module":
    from qgoft_core.tuners.qgoft import QGOFTConfig, get_qgoft_model

    config = QGOFTConfig(method=settings.method, scaling=settings.scaling, reg_lambda=settings.reg_lambda,
                         target_modules=targets, modules_to_save=[HEAD])
    return get_qgoft_model(classifier, config)


def _build_peft(classifier: "nn.Module", settings: "MethodSettings", targets: list[str]) -> "nn.Module":
    from peft import get_peft_model

    return get_peft_model(classifier, peft_config(settings.method, settings, targets, [HEAD]))


def _build_full(classifier: "nn.Module", settings: "MethodSettings", targets: list[str]) -> "nn.Module":
    # Full fine-tuning changes every weight: it gets its own copy of the shared base.
    model = copy.deepcopy(classifier)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _build_head(classifier: "nn.Module", settings: "MethodSettings", targets: list[str]) -> "nn.Module":
    for name, p in classifier.named_parameters():
        p.requires_grad_(name.startswith(HEAD + "."))
    return classifier


METHOD_SPECS: dict[str, MethodSpec] = {s.key: s for s in (
    MethodSpec("goft", "GOFT (strict Givens)", "GOFT", "#ff7f0e", 2e-3, "givens", True, build=_build_givens),
    MethodSpec("qgoft", "qGOFT (quasi-Givens)", "qGOFT", "#d62728", 2e-3, "givens", True, build=_build_givens,
               penalty=True),
    MethodSpec("lora", "LoRA (PEFT)", "LoRA", "#1f77b4", 1e-3, "peft", False, "LORA", _build_peft),
    MethodSpec("oft", "OFT (PEFT)", "OFT", "#2ca02c", 1e-3, "peft", True, "OFT", _build_peft),
    MethodSpec("boft", "BOFT (PEFT)", "BOFT", "#17becf", 2e-3, "peft", True, "BOFT", _build_peft),
    MethodSpec("full", "full fine-tuning", "Full FT", "#7f7f7f", 5e-5, "full", False, build=_build_full),
    MethodSpec("head", "head only (linear probe)", "Head only", "#bcbd22", 5e-3, "head", False,
               build=_build_head),
)}
METHODS: tuple[str, ...] = tuple(METHOD_SPECS)
GIVENS_METHODS: tuple[str, ...] = tuple(k for k, s in METHOD_SPECS.items() if s.givens)
PEFT_TYPES: dict[str, str] = {s.peft_type: k for k, s in METHOD_SPECS.items() if s.peft_type}


def method_spec(key: str) -> MethodSpec:
    """The spec of `key`; a clear error for an unknown method."""
    try:
        return METHOD_SPECS[key]
    except KeyError:
        raise ValueError(f"unknown method {key!r}; choose one of {', '.join(METHODS)}") from None


def method_label(key: str, short: bool = False) -> str:
    """The method's label, or the key itself for a method this table does not know."""
    spec = METHOD_SPECS.get(key)
    return key if spec is None else (spec.short if short else spec.label)


def has_penalty(key: str) -> bool:
    """Whether the method adds a regulariser to the task loss."""
    spec = METHOD_SPECS.get(key)
    return bool(spec and spec.penalty)


def method_color(key: str) -> Optional[str]:
    spec = METHOD_SPECS.get(key)
    return None if spec is None else spec.color


def lighter(color: str, amount: float = 0.45) -> str:
    """`color` (#rrggbb) mixed with white: a variant of a method drawn as its family."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)
