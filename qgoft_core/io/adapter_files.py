"""The adapter file format: adapter_config.json + adapter_model.safetensors.

This module knows the format only -- a JSON config dict and a flat dict of
tensors, read and written safely -- and nothing about models: the tuner
(`qgoft_core.tuners.qgoft.model`) builds the dict and the tensors from a
QGOFTModel and checks a loaded file against one. Only JSON and safetensors
are ever read (never pickle), and every check fails with an error that names
the problem, so an app can show it to a person.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from qgoft_core._version import __version__
from qgoft_core.io.safe_files import CONFIG_NAME, MAX_CONFIG_BYTES, WEIGHTS_NAME

FORMAT = "qgoft-adapter"
FORMAT_VERSION = 1
ANGLE_DOC = {
    "plain": "qgoft_theta holds angles in radians; block = [[cos, -sin], [sin, cos]]",
    "tanh": "qgoft_theta holds phi; angle = pi * tanh(phi); block = [[cos, -sin], [sin, cos]]",
}
QUASI_DOC = "qgoft_blocks[i] is the free 2x2 block of pair i; columns alpha, beta"
PAIR_ORDER_DOC = "level by level (level 1 first), by increasing first index within a level"


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


def write_adapter_folder(directory, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """Write `config` (after the format header) and `tensors` as an adapter folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "library": "qgoft_core",
              "library_version": __version__}
    (directory / CONFIG_NAME).write_text(json.dumps({**header, **config}, indent=2))
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
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


def check_format(raw: dict[str, Any]) -> None:
    """Refuse a config that is not this library's format, or a newer version of it."""
    if raw.get("format") != FORMAT:
        raise AdapterFormatError(
            f"not a qGOFT adapter (format={raw.get('format')!r}, peft_type={raw.get('peft_type')!r})")
    if int(raw.get("format_version", 0)) > FORMAT_VERSION:
        raise AdapterFormatError(f"adapter format version {raw['format_version']} is newer than this "
                                 f"library supports ({FORMAT_VERSION}); upgrade qgoft_core")


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
