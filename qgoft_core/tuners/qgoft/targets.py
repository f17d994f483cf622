"""Which layers of a model get an adapter."""
from __future__ import annotations

import re
from typing import Optional, Union

from torch import nn

from qgoft_core.tuners.qgoft.layer import ADAPTABLE_TYPES

# All attention and MLP projections, by transformers' `config.model_type`.
_BERT_LIKE = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
_LLAMA_LIKE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DEFAULT_TARGETS: dict[str, list[str]] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "electra": _BERT_LIKE,
    "camembert": _BERT_LIKE,
    "mpnet": ["q", "k", "v", "o", "intermediate.dense", "output.dense"],
    "deberta-v2": ["query_proj", "key_proj", "value_proj", "attention.output.dense",
                   "intermediate.dense", "output.dense"],
    "deberta": ["in_proj", "attention.output.dense", "intermediate.dense", "output.dense"],
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"],
    "modernbert": ["Wqkv", "Wo", "Wi"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    "smollm3": _LLAMA_LIKE,
    "olmo": _LLAMA_LIKE,
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"],
}
# Never adapted by default: task heads and poolers are trained in full or not at all.
_HEAD_NAMES = {"classifier", "score", "lm_head", "qa_outputs", "pooler", "head", "pre_classifier"}


def _model_type(model: nn.Module) -> Optional[str]:
    config = getattr(model, "config", None)
    if config is None:  # e.g. our SentenceClassifier: look at the wrapped encoder
        for child in model.modules():
            config = getattr(child, "config", None)
            if config is not None:
                break
    return getattr(config, "model_type", None)


def default_targets(model: nn.Module) -> Union[list[str], None]:
    return DEFAULT_TARGETS.get(_model_type(model) or "")


def _matches(name: str, targets: Union[list[str], str]) -> bool:
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def _is_head(name: str) -> bool:
    return any(part in _HEAD_NAMES for part in name.split("."))


def find_targets(model: nn.Module, targets: Optional[Union[list[str], str]],
                 exclude: Optional[list[str]] = None) -> list[str]:
    """Names of the modules to adapt; a clear error when nothing fits."""
    chosen = targets if targets is not None else default_targets(model)
    names = []
    for name, module in model.named_modules():
        if not name or (exclude and _matches(name, exclude)):
            continue
        if chosen is None:
            hit = isinstance(module, ADAPTABLE_TYPES) and not _is_head(name)
        else:
            hit = _matches(name, chosen) and not (targets is None and _is_head(name))
        if not hit:
            continue
        if not isinstance(module, ADAPTABLE_TYPES):
            if isinstance(chosen, str):  # a regex may also match containers: skip them
                continue
            raise ValueError(f"target {name!r} is a {type(module).__name__}; "
                             "GOFT adapts only nn.Linear and transformers Conv1D layers")
        names.append(name)
    if not names:
        linear = [n for n, m in model.named_modules() if isinstance(m, ADAPTABLE_TYPES)][:8]
        raise ValueError(f"target_modules={chosen!r} matched no linear layer; "
                         f"linear layers in this model include {linear}")
    return names
