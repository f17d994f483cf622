"""Labels as a person writes them (names, whole numbers, true/false) -> class ids 0..k-1.

Standard library only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from qgoft_core.explore.data.errors import quoted
from qgoft_core.explore.data.parse import json_type

__all__ = ["label_key", "map_labels"]

_INT_RE = re.compile(r"[+-]?\d+(?:\.0*)?")


def label_key(raw: Any, class_names: Sequence[str] | None) -> tuple[tuple | None, str | None]:
    """(normalized label, None) or (None, what is wrong).

    With ``class_names``, integer labels are ids into it (-1 = no label) and
    string labels must be among its names.
    """
    if raw is None:
        return None, "missing label"
    if isinstance(raw, bool):
        key: tuple = ("bool", raw)
    elif isinstance(raw, int):
        key = ("int", raw)
    elif isinstance(raw, float):
        if math.isnan(raw):
            return None, "missing label"
        if not (math.isfinite(raw) and raw.is_integer()):
            return None, f"label {raw!r} is not a class: use a whole number or a name"
        key = ("int", int(raw))
    elif isinstance(raw, str):
        value = raw.strip()
        if not value:
            return None, "missing label"
        if _INT_RE.fullmatch(value):
            key = ("int", int(value.split(".")[0]))
        else:
            key = ("str", value)
    elif isinstance(raw, (list, tuple)):
        return None, "the label is a list; only one label per row is supported"
    else:
        return None, f"the label is {json_type(raw)}; expected a name or a whole number"
    if class_names is None:
        return key, None
    kind, value = key
    if kind == "int":
        if value == -1:
            return None, "missing label (-1)"
        if not 0 <= value < len(class_names):
            return None, f"label {value} is outside 0..{len(class_names) - 1}"
        return key, None
    if kind == "str" and value in class_names:
        return ("int", list(class_names).index(value)), None
    return None, f"label {value!r} is not one of the classes ({quoted(list(class_names))})"


def _label_name(key: tuple) -> str:
    kind, value = key
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


def map_labels(keys: list[tuple], class_names: Sequence[str] | None) -> tuple[list[int], tuple[str, ...]]:
    """Class ids for normalized labels, and the class names.

    Without ``class_names``: whole numbers (or true/false) in numeric order,
    otherwise by name.
    """
    if class_names is not None:
        return [value for _, value in keys], tuple(str(n) for n in class_names)
    kinds = {kind for kind, _ in keys}
    unique = set(keys)
    if len(kinds) == 1:  # all ints (or all bools): numeric order
        ordered = sorted(unique, key=lambda k: k[1])
    else:  # mixed: by name
        ordered = sorted(unique, key=_label_name)
    names: list[str] = []
    index: dict[str, int] = {}
    for key in ordered:
        name = _label_name(key)
        if name not in index:
            index[name] = len(names)
            names.append(name)
    return [index[_label_name(k)] for k in keys], tuple(names)
