"""Adapter folders: adapter_config.json + adapter_model.safetensors.

Only JSON and safetensors are ever read (never pickle), and every check fails
with an error that names the problem, so an app can show it to a person.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from qgoft_core.tuners.qgoft.config import METHODS, QGOFTConfig
from qgoft_core.tuners.qgoft.model import QGOFTModel, base_model_id, share_base

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT = "qgoft-adapter"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 2 * 1024**2
ANGLE_DOC = {
    "plain": "qgoft_theta holds angles in radians; block = [[cos, -sin], [sin, cos]]",
    "tanh": "qgoft_theta holds phi; angle = pi * tanh(phi); block = [[cos, -sin], [sin, cos]]",
}


class AdapterFormatError(ValueError):
    """An adapter folder or file that cannot be used; the message says why."""


class NotSafetensorsError(AdapterFormatError):
    pass


class UnknownMethodError(AdapterFormatError):
    pass


class MissingKeysError(AdapterFormatError):
    pass


class UnexpectedKeysError(AdapterFormatError):
    pass


class ShapeMismatchError(AdapterFormatError):
    pass


class BaseModelMismatchError(AdapterFormatError):
    pass


def _library_version() -> str:
    from qgoft_core import __version__
    return __version__


def _weight_norm(layer) -> float:
    return float(layer.original_weight().detach().double().norm())


def save_adapter(model: QGOFTModel, directory) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    layers = {
        name: {"in_features": layer.in_features, "out_features": layer.out_features,
               "kind": "conv1d" if layer.is_conv1d else "linear",
               "base_weight_norm": _weight_norm(layer)}
        for name, layer in model.adapter_layers().items()
    }
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library": "qgoft_core",
        "library_version": _library_version(),
        **model.config.to_dict(),
        "angle_parameterisation": ANGLE_DOC[model.config.angle_param] if model.config.method == "goft"
        else "qgoft_blocks[i] is the free 2x2 block of pair i; columns alpha, beta",
        "pair_order": "level by level (level 1 first), by increasing first index within a level",
        "layers": layers,
    }
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.adapter_state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    return directory


def read_adapter_config(directory) -> dict[str, Any]:
    """The validated JSON config of an adapter folder (any supported library)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise AdapterFormatError(f"{directory} is not a folder")
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise AdapterFormatError(f"{CONFIG_NAME} is missing in {directory}")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise AdapterFormatError(f"{CONFIG_NAME} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterFormatError(f"{CONFIG_NAME} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise AdapterFormatError(f"{CONFIG_NAME} must hold a JSON object")
    return config


def read_adapter_tensors(directory) -> dict[str, torch.Tensor]:
    """The tensors of an adapter folder; refuses anything but safetensors."""
    directory = Path(directory)
    path = directory / WEIGHTS_NAME
    if not path.is_file():
        pickles = [p.name for p in directory.glob("*.bin")] + [p.name for p in directory.glob("*.pt")]
        hint = f" (found {', '.join(pickles)}: pickle files are never loaded)" if pickles else ""
        raise NotSafetensorsError(f"{WEIGHTS_NAME} is missing in {directory}{hint}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise NotSafetensorsError(f"{WEIGHTS_NAME} is not a valid safetensors file: {exc}") from None


def qgoft_config_from_dict(raw: dict[str, Any]) -> QGOFTConfig:
    if raw.get("format") != FORMAT:
        raise AdapterFormatError(
            f"not a qGOFT adapter (format={raw.get('format')!r}, peft_type={raw.get('peft_type')!r})")
    if int(raw.get("format_version", 0)) > FORMAT_VERSION:
        raise AdapterFormatError(f"adapter format version {raw['format_version']} is newer than this "
                                 f"library supports ({FORMAT_VERSION}); upgrade qgoft_core")
    if raw.get("method") not in METHODS:
        raise UnknownMethodError(f"unknown method {raw.get('method')!r}; expected one of {', '.join(METHODS)}")
    try:
        return QGOFTConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise AdapterFormatError(f"invalid adapter config: {exc}") from None


def _check_base(model: QGOFTModel, raw: dict[str, Any]) -> None:
    recorded, current = raw.get("base_model_name_or_path"), base_model_id(model.base_model)
    if recorded and current and recorded != current:
        raise BaseModelMismatchError(
            f"adapter was trained on base model {recorded!r} but is being loaded into {current!r}")
    for name, meta in (raw.get("layers") or {}).items():
        layers = model.adapter_layers()
        if name not in layers or "base_weight_norm" not in meta:
            continue
        norm = _weight_norm(layers[name])
        if not math.isclose(norm, float(meta["base_weight_norm"]), rel_tol=1e-4):
            raise BaseModelMismatchError(
                f"layer {name}: base weight differs from the one the adapter was trained on "
                f"(norm {norm:.6g} vs {float(meta['base_weight_norm']):.6g}); wrong base model?")


def load_adapter(base: nn.Module, directory, is_trainable: bool = False,
                 check_base: bool = True) -> QGOFTModel:
    """Wrap `base` with the adapter saved in `directory`, checking everything."""
    # Wrapping freezes the shared weight tensors (requires_grad is a property of
    # the tensor, which share_base does not copy): put the flags back when a check
    # fails, so that a refused file leaves the caller's model exactly as it was.
    flags = [(p, p.requires_grad) for p in base.parameters()]
    try:
        return _load_adapter(base, directory, is_trainable, check_base)
    except BaseException:
        for p, flag in flags:
            p.requires_grad_(flag)
        raise


def _load_adapter(base: nn.Module, directory, is_trainable: bool, check_base: bool) -> QGOFTModel:
    raw = read_adapter_config(directory)
    config = qgoft_config_from_dict(raw)
    recorded_layers = raw.get("layers") or {}
    try:
        # Wrap a structural copy (same weight tensors): a file that fails a check
        # below must leave the caller's model exactly as it was.
        model = QGOFTModel(share_base(base), config)
    except ValueError as exc:
        raise ShapeMismatchError(f"the adapter's target layers do not fit this model: {exc}") from None
    expected = {k: v for k, v in model.adapter_state_dict().items()}
    for name, layer in model.adapter_layers().items():
        meta = recorded_layers.get(name)
        if meta and (meta.get("in_features"), meta.get("out_features")) != (layer.in_features, layer.out_features):
            raise ShapeMismatchError(
                f"layer {name}: adapter is for {meta.get('in_features')} -> {meta.get('out_features')} "
                f"features, the model has {layer.in_features} -> {layer.out_features}")
    tensors = read_adapter_tensors(directory)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing:
        raise MissingKeysError(f"{len(missing)} adapter tensors missing, e.g. {missing[:3]}")
    if extra:
        raise UnexpectedKeysError(f"{len(extra)} tensors do not belong to this model, e.g. {extra[:3]}")
    for key, target in expected.items():
        if tuple(tensors[key].shape) != tuple(target.shape):
            raise ShapeMismatchError(f"{key}: file has shape {tuple(tensors[key].shape)}, "
                                     f"the model needs {tuple(target.shape)}")
        if not torch.isfinite(tensors[key]).all():
            raise AdapterFormatError(f"{key} contains NaN or infinite values")
    if check_base:
        _check_base(model, raw)
    with torch.no_grad():
        for key, target in expected.items():
            target.copy_(tensors[key].to(target.dtype))
    for p in model.parameters():
        if p.requires_grad and not is_trainable:
            p.requires_grad_(False)
    return model
