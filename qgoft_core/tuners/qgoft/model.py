"""Wrapping a whole model: the PEFT-style API around QGOFTLayer."""
from __future__ import annotations

import contextlib
import copy
import math
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from qgoft_core.io import adapter_files as files
from qgoft_core.io.adapter_files import (AdapterFormatError, BaseModelMismatchError, MissingKeysError,
                                         ShapeMismatchError, UnexpectedKeysError, UnknownMethodError)
from qgoft_core.tuners.qgoft.config import METHODS, QGOFTConfig
from qgoft_core.tuners.qgoft.layer import QGOFTLayer
from qgoft_core.tuners.qgoft.targets import _matches, find_targets
from qgoft_core.tuners.utils import count_parameters


class ModulesToSaveWrapper(nn.Module):
    """A trainable copy of a module (e.g. a task head); the original stays frozen."""

    def __init__(self, original: nn.Module):
        super().__init__()
        self.original_module = original
        self.trained_module = copy.deepcopy(original)
        for p in self.trained_module.parameters():
            p.requires_grad_(True)
        self.disabled = False

    def forward(self, *args, **kwargs):
        return self.active_module(*args, **kwargs)

    @property
    def active_module(self) -> nn.Module:
        return self.original_module if self.disabled else self.trained_module

    def __getattr__(self, name: str):
        # Callers read attributes such as `.weight` from the module they wrapped.
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("original_module" if self.__dict__.get("disabled")
                                               else "trained_module"), name)


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def share_base(model: nn.Module) -> nn.Module:
    """A structural copy of `model` whose parameters and buffers are the same tensors.

    Lets several runs (several visitors of one server) adapt one frozen base:
    each gets its own module tree to insert adapters into, no weight is copied.
    """
    memo = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    return copy.deepcopy(model, memo)


class QGOFTModel(nn.Module):
    """A model with GOFT/qGOFT adapters; behaves like the wrapped model."""

    def __init__(self, model: nn.Module, config: QGOFTConfig):
        super().__init__()
        self.base_model = model
        self.config = config
        for p in model.parameters():
            p.requires_grad_(False)
        self._adapter_names = find_targets(model, config.target_modules, config.exclude_modules)
        for name in self._adapter_names:
            base_layer = model.get_submodule(name)
            layer = QGOFTLayer(base_layer, config.method, config.scaling, config.angle_param,
                               config.block_levels)
            _set_submodule(model, name, layer)
        self._saved_names = []
        for name, module in list(model.named_modules()):
            if config.modules_to_save and name and _matches(name, config.modules_to_save) \
                    and not any(name.startswith(s + ".") for s in self._saved_names):
                _set_submodule(model, name, ModulesToSaveWrapper(module))
                self._saved_names.append(name)
        if config.modules_to_save and not self._saved_names:
            raise ValueError(f"modules_to_save={config.modules_to_save} matched no module")
        if config.base_model_name_or_path is None:
            config.base_model_name_or_path = base_model_id(model)

    # -- passing through ----------------------------------------------------
    def forward(self, *args, **kwargs):
        return self.base_model(*args, **kwargs)

    def generate(self, *args, **kwargs):
        return self.base_model.generate(*args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.base_model, name)

    # -- the adapters -------------------------------------------------------
    def adapter_layers(self) -> dict[str, QGOFTLayer]:
        return {name: self.base_model.get_submodule(name) for name in self._adapter_names}

    def saved_modules(self) -> dict[str, ModulesToSaveWrapper]:
        return {name: self.base_model.get_submodule(name) for name in self._saved_names}

    def regularization_loss(self) -> torch.Tensor:
        """lambda * sum over layers and blocks of <alpha, beta>^2 (0 for GOFT)."""
        penalties = [layer.orthogonality_penalty() for layer in self.adapter_layers().values()]
        return self.config.reg_lambda * torch.stack(penalties).sum()

    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        """(trainable, all) parameter counts; shared tensors counted once."""
        return count_parameters(self)

    def print_trainable_parameters(self) -> None:
        trainable, total = self.get_nb_trainable_parameters()
        print(f"trainable params: {trainable:,} || all params: {total:,} || "
              f"trainable%: {100 * trainable / max(total, 1):.4f}")

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Adapter tensors keyed like PEFT: base_model.model.<module path>.<param>."""
        state = {}
        for name, layer in self.adapter_layers().items():
            for pname, p in layer.named_parameters(recurse=False):
                state[f"base_model.model.{name}.{pname}"] = p.detach()
        for name, wrapper in self.saved_modules().items():
            for pname, p in wrapper.trained_module.state_dict().items():
                state[f"base_model.model.{name}.{pname}"] = p.detach()
        return state

    # -- merging ------------------------------------------------------------
    def merge_adapter(self) -> None:
        for layer in self.adapter_layers().values():
            layer.merge()

    def unmerge_adapter(self) -> None:
        for layer in self.adapter_layers().values():
            layer.unmerge()

    @torch.no_grad()
    def merge_and_unload(self) -> nn.Module:
        """A plain model with the adapters folded in (this wrapper is spent)."""
        for name, layer in self.adapter_layers().items():
            layer.merge()
            layer._merged_from = None
            _set_submodule(self.base_model, name, layer.base_layer)
        for name, wrapper in self.saved_modules().items():
            _set_submodule(self.base_model, name, wrapper.trained_module)
        self._adapter_names, self._saved_names = [], []
        return self.base_model

    @contextlib.contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Run the pretrained model (and original heads) inside this block."""
        switches = list(self.adapter_layers().values()) + list(self.saved_modules().values())
        before = [m.disabled for m in switches]
        for m in switches:
            m.disabled = True
        try:
            yield
        finally:
            for m, flag in zip(switches, before):
                m.disabled = flag

    # -- files --------------------------------------------------------------
    def save_pretrained(self, directory) -> None:
        save_adapter(self, directory)

    @classmethod
    def from_pretrained(cls, model: nn.Module, directory, is_trainable: bool = False,
                        check_base: bool = True) -> "QGOFTModel":
        return load_adapter(model, directory, is_trainable=is_trainable, check_base=check_base)


def base_model_id(model: nn.Module) -> str | None:
    """The hub id or path the base was loaded from, if transformers recorded it."""
    for module in model.modules():
        config = getattr(module, "config", None)
        name = getattr(config, "_name_or_path", None) if config is not None else None
        if name:
            return str(name)
    return None


def get_qgoft_model(model: nn.Module, config: QGOFTConfig) -> QGOFTModel:
    """Freeze `model`, put adapters in place of its targeted layers, and wrap it."""
    if not isinstance(config, QGOFTConfig):
        raise TypeError(f"expected a QGOFTConfig, got {type(config).__name__}")
    return QGOFTModel(model, config)


# -- adapter folders (the file format itself is io.adapter_files) -------------------
def _weight_norm(layer: QGOFTLayer) -> float:
    return float(layer.original_weight().detach().double().norm())


def save_adapter(model: QGOFTModel, directory) -> Path:
    """Write `model`'s adapter (and saved modules) as an adapter folder."""
    layers = {
        name: {"in_features": layer.in_features, "out_features": layer.out_features,
               "kind": "conv1d" if layer.is_conv1d else "linear",
               "base_weight_norm": _weight_norm(layer)}
        for name, layer in model.adapter_layers().items()
    }
    config = {
        **model.config.to_dict(),
        "angle_parameterisation": files.ANGLE_DOC[model.config.angle_param] if model.config.method == "goft"
        else files.QUASI_DOC,
        "pair_order": files.PAIR_ORDER_DOC,
        "layers": layers,
    }
    return files.write_adapter_folder(directory, config, model.adapter_state_dict())


def qgoft_config_from_dict(raw: dict[str, Any]) -> QGOFTConfig:
    """The QGOFTConfig of an adapter folder's JSON config, or an AdapterFormatError."""
    files.check_format(raw)
    if raw.get("method") not in METHODS:
        raise UnknownMethodError(f"unknown method {raw.get('method')!r}; expected one of {', '.join(METHODS)}")
    try:
        return QGOFTConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise AdapterFormatError(f"invalid adapter config: {exc}") from None


def _check_base(model: QGOFTModel, raw: dict[str, Any]) -> None:
    """Refuse a base whose weights differ from the recorded ones.

    The recorded weight norms decide: one model goes by many names (a hub id, a
    local folder, a package's copy), so a different name with the same weights is
    the same base. Only a file without recorded norms falls back to the names.
    """
    layers = model.adapter_layers()
    checked = 0
    for name, meta in (raw.get("layers") or {}).items():
        if name not in layers or "base_weight_norm" not in meta:
            continue
        norm = _weight_norm(layers[name])
        if not math.isclose(norm, float(meta["base_weight_norm"]), rel_tol=1e-4):
            raise BaseModelMismatchError(
                f"layer {name}: base weight differs from the one the adapter was trained on "
                f"(norm {norm:.6g} vs {float(meta['base_weight_norm']):.6g}); wrong base model?")
        checked += 1
    recorded, current = raw.get("base_model_name_or_path"), base_model_id(model.base_model)
    if not checked and recorded and current and recorded != current:
        raise BaseModelMismatchError(
            f"adapter was trained on base model {recorded!r} but is being loaded into {current!r}")


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
    raw = files.read_adapter_config(directory)
    config = qgoft_config_from_dict(raw)
    recorded_layers = raw.get("layers") or {}
    try:
        # Wrap a structural copy (same weight tensors): a file that fails a check
        # below must leave the caller's model exactly as it was.
        model = QGOFTModel(share_base(base), config)
    except ValueError as exc:
        raise ShapeMismatchError(f"the adapter's target layers do not fit this model: {exc}") from None
    expected = model.adapter_state_dict()
    for name, layer in model.adapter_layers().items():
        meta = recorded_layers.get(name)
        if meta and (meta.get("in_features"), meta.get("out_features")) != (layer.in_features, layer.out_features):
            raise ShapeMismatchError(
                f"layer {name}: adapter is for {meta.get('in_features')} -> {meta.get('out_features')} "
                f"features, the model has {layer.in_features} -> {layer.out_features}")
    tensors = files.read_adapter_tensors(directory)
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
