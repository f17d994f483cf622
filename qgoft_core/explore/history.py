"""What a training run records, owned by the engine: one typed history, one NaN policy.

The NaN policy (the only one in the project):
  * in memory an undefined number is NaN (figures draw a gap, tables show "–");
  * in JSON it is null (JSON has no NaN);
  * reading JSON back, null in a number slot is NaN again.

`json_safe` and `finite_or_none` are that policy; every file writer uses them.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

FLOAT32_DIGITS = 7  # float32 precision: more digits in JSON/CSV would be noise


def finite_or_none(x: Any) -> Optional[float]:
    """A plain float, or None when `x` is None, NaN, inf or not a number."""
    if x is None or isinstance(x, (str, bytes)):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def round_float(x: Any, digits: int = FLOAT32_DIGITS) -> Optional[float]:
    """`finite_or_none`, rounded to `digits` significant digits."""
    value = finite_or_none(x)
    return None if value is None else float(f"{value:.{digits}g}")


def nan_if_none(x: Any) -> float:
    """The reverse of `finite_or_none`: None (JSON null) -> NaN, else float."""
    return math.nan if x is None else float(x)


def json_safe(value: Any, digits: Optional[int] = None) -> Any:
    """A JSON-ready copy: NaN/inf -> None, numpy/torch -> plain Python, recursively.

    Dicts (keys -> str), lists, tuples, numpy arrays and scalars, torch tensors.
    With `digits`, floats are rounded to that many significant digits.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, digits) for v in value]
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return [json_safe(v, digits) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return finite_or_none(value) if digits is None else round_float(value, digits)
    return value
