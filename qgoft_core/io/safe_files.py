"""Reading adapter files that came from someone else, safely.

The library's one set of readers for untrusted adapter files: a folder or a
.zip holding ``adapter_config.json`` and ``*.safetensors`` weights.

* zips: every entry is checked (absolute paths, ``..``, symbolic links, entry
  count) before anything is extracted; only the config and the safetensors
  files of the one adapter folder are written, and the bytes actually written
  are counted against the size limit (a zip header can lie);
* the config: at most ``MAX_CONFIG_BYTES``, UTF-8, a JSON object;
* weights: safetensors only, size-capped; pickle files (``.bin``, ``.pt`` ...)
  are never opened, because unpickling can run arbitrary code; when they are
  all there is, the error says so and how to re-save.

Every problem raises `SafeFileError` (a ValueError) with one sentence naming
it. Needs torch and safetensors only.
"""
from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

import torch

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
MAX_CONFIG_BYTES = 2 * 1024**2
MAX_ZIP_ENTRIES = 1000
DEFAULT_MAX_BYTES = 500 * 1024**2  # weights (or an unpacked zip) larger than this are refused


class SafeFileError(ValueError):
    """A file that is refused or cannot be read; the message names the problem."""


def size_text(n: int) -> str:
    """'1.5 MB' / '12.0 KB': sizes in messages."""
    return f"{n / 1024**2:.1f} MB" if n >= 1024**2 else f"{n / 1024:.1f} KB"


def is_pickle_name(name: str) -> bool:
    """Whether a file name looks like a pickle checkpoint (never to be loaded)."""
    return str(name).lower().endswith(PICKLE_SUFFIXES)


def pickle_hint(names: Iterable[str]) -> str:
    """A sentence to append to an error when the only weights found are pickle files ('' if none)."""
    pickles = sorted(n for n in names if is_pickle_name(n))
    if not pickles:
        return ""
    return (f" It holds only pickle weight files ({', '.join(pickles[:3])}), which are never loaded because "
            "unpickling can run arbitrary code: save the adapter with safetensors "
            "(save_pretrained(..., safe_serialization=True)).")


def check_zip_member(info: zipfile.ZipInfo) -> None:
    """Refuse an entry with an absolute path, one that climbs out with '..', or a symbolic link."""
    name = info.filename
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise SafeFileError(f"the zip holds an entry with an absolute path ({name!r}); refused")
    if ".." in re.split(r"[/\\]+", name):
        raise SafeFileError(f"the zip holds an entry that points outside its folder ({name!r}); refused")
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise SafeFileError(f"the zip holds a symbolic link ({name!r}); refused")


def _base_name(info: zipfile.ZipInfo) -> str:
    return info.filename.replace("\\", "/").rpartition("/")[2]


def _folder_of(info: zipfile.ZipInfo) -> str:
    return info.filename.replace("\\", "/").rpartition("/")[0]


def extract_adapter_zip(path, dest, max_bytes: int = DEFAULT_MAX_BYTES,
                        config_name: str = CONFIG_NAME) -> Path:
    """Unpack the config and *.safetensors of the one adapter folder in the zip into `dest`; returns `dest`.

    Nothing else in the archive is written; every entry is checked first.
    """
    path, dest = Path(path), Path(dest)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SafeFileError(f"{path.name} is not a valid zip file ({exc})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise SafeFileError(f"{path.name} holds {len(infos)} entries (the limit is {MAX_ZIP_ENTRIES})")
        for info in infos:
            check_zip_member(info)
        files = [i for i in infos if not i.is_dir()]
        configs = [i for i in files if _base_name(i) == config_name]
        if not configs:
            raise SafeFileError(f"{path.name} holds no {config_name}: not an adapter."
                                + pickle_hint(i.filename for i in files))
        if len(configs) > 1:
            raise SafeFileError(f"{path.name} holds {len(configs)} adapters "
                                f"({', '.join(c.filename for c in configs[:3])}); zip one adapter folder")
        folder = _folder_of(configs[0])
        beside = [i for i in files if _folder_of(i) == folder]
        weights = [i for i in beside if i.filename.lower().endswith(".safetensors")]
        if not weights:
            raise SafeFileError(f"{path.name} holds no .safetensors weights next to {config_name}."
                                + pickle_hint(i.filename for i in beside))
        wanted = configs + weights
        declared = sum(i.file_size for i in wanted)
        if declared > max_bytes:
            raise SafeFileError(f"{path.name} is too large ({size_text(declared)} unpacked; the limit is "
                                f"{size_text(max_bytes)})")
        written = 0
        for info in wanted:
            try:
                with archive.open(info) as src, open(dest / _base_name(info), "wb") as out:
                    while chunk := src.read(1024 * 1024):
                        written += len(chunk)
                        if written > max_bytes:  # the header lied about the size
                            raise SafeFileError(f"{path.name} unpacks to more than {size_text(max_bytes)}; "
                                                "refused")
                        out.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
                    OSError, EOFError) as exc:
                raise SafeFileError(f"{path.name}: cannot unpack {info.filename} ({exc})") from None
    return dest


def read_json_config(folder, name: str = CONFIG_NAME, max_bytes: int = MAX_CONFIG_BYTES) -> dict:
    """The JSON object in `folder`/`name`: size-capped, UTF-8, an object (not a list or a number)."""
    folder = Path(folder)
    path = folder / name
    if not path.is_file():
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        raise SafeFileError(f"{name} is missing in {folder.name or folder}: not an adapter folder."
                            + pickle_hint(names))
    if path.stat().st_size > max_bytes:
        raise SafeFileError(f"{name} is larger than {size_text(max_bytes)}; refused")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SafeFileError(f"{name} is not UTF-8 text (malformed JSON)") from None
    except json.JSONDecodeError as exc:
        raise SafeFileError(f"{name} is malformed JSON: {exc.msg} at line {exc.lineno}, "
                            f"column {exc.colno}") from None
    if not isinstance(config, dict):
        raise SafeFileError(f"{name} is malformed: it must hold a JSON object, not {type(config).__name__}")
    return config


def find_weights_file(folder, max_bytes: int = DEFAULT_MAX_BYTES, preferred: str = WEIGHTS_NAME) -> Path:
    """The one *.safetensors file of `folder` (`preferred` when there are several), size-checked.

    Pickle files are never chosen: when they are all there is, the error says so.
    """
    folder = Path(folder)
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(".safetensors"))
    if not found:
        raise SafeFileError(f"no .safetensors weights in {folder.name or folder} (expected {preferred})."
                            + pickle_hint(p.name for p in folder.iterdir()))
    chosen = [p for p in found if p.name == preferred] or found
    if len(chosen) > 1:
        raise SafeFileError(f"several .safetensors files and no {preferred} in {folder.name}: "
                            f"{', '.join(p.name for p in chosen[:3])}")
    size = chosen[0].stat().st_size
    if size > max_bytes:
        raise SafeFileError(f"{chosen[0].name} is too large ({size_text(size)}; the limit is "
                            f"{size_text(max_bytes)})")
    return chosen[0]


def read_safetensors(path, allow_empty: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (on the CPU); refuses anything that is not one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if is_pickle_name(path.name):
        raise SafeFileError(f"{path.name} is a pickle file and is never loaded (unpickling can run "
                            "arbitrary code); save the adapter with safetensors")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise SafeFileError(f"{path.name} is not a valid safetensors file ({exc})") from None
    if not tensors and not allow_empty:
        raise SafeFileError(f"{path.name} holds no tensors")
    return tensors


__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "PICKLE_SUFFIXES", "MAX_CONFIG_BYTES", "MAX_ZIP_ENTRIES",
           "DEFAULT_MAX_BYTES", "SafeFileError", "size_text", "is_pickle_name", "pickle_hint",
           "check_zip_member", "extract_adapter_zip", "read_json_config", "find_weights_file",
           "read_safetensors"]
