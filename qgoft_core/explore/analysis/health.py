"""Health flags of an adapted layer: half-turn (tanh form: saturated) or still angles, lost orthogonality, odd scales, reflections.

The thresholds are explicit constants so that the app and the docs can quote
them (`threshold_text`).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

SATURATION_FRACTION = 0.95  # |theta| > 0.95 pi: a rotation at the end of its range
STILL_ANGLE = 1e-6  # radians: every angle of a layer below this = the rotation never moved
ORTH_DEV_THRESHOLD = 1e-3  # ||M^T M - I||_F / sqrt(d) above this = no longer orthogonal
SCALE_RANGE = (0.5, 2.0)  # a learned scale outside this range is an outlier
SCALE_MEDIAN_FACTOR = 1.5  # ... and so is one more than 1.5x above (or below) the layer's median

ORTH_DEV_MEANING = {
    "goft": ("a strict Givens rotation is orthogonal to float error: with input scaling (GOFT*) the deviation "
             "includes the scale diag(s) and is large by design; otherwise the stored angles are broken"),
    "qgoft": ("the quasi-Givens blocks have drifted away from rotations (reg_lambda only pushes each block's "
              "two columns to be perpendicular; no reg_lambda pulls back their free lengths)"),
    "oft": "the Cayley-Neumann series is no longer a good approximation (rotation too large for it)",
    "boft": "an exact Cayley rotation should be orthogonal to float error",
}


def threshold_text() -> str:
    return (f"angles at a half-turn when the wrapped |θ| > {SATURATION_FRACTION:g}π (saturated only for the tanh form); rotation never moved when every "
            f"|θ| < {STILL_ANGLE:g} rad; orthogonality deviation > {ORTH_DEV_THRESHOLD:g} (normalised); "
            f"scales outside [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}] or more than "
            f"{SCALE_MEDIAN_FACTOR:g}x from the layer's median; blocks with det < 0 (reflections)")


def wrap_angles(angles: np.ndarray) -> np.ndarray:
    """Radians into [-pi, pi): a rotation by a + 2 pi is the same rotation."""
    return np.mod(np.asarray(angles, dtype=float) + math.pi, 2 * math.pi) - math.pi


def health_flags(row: dict, angles: Optional[np.ndarray], scales: Optional[np.ndarray], method: str) -> None:
    """Append the layer's problems, one sentence each naming it, to row["_flags"]."""
    where = f"{row['layer']} ({row['module']})"
    flags = row["_flags"]
    if angles is not None and angles.size:
        wrapped = np.abs(wrap_angles(angles))
        saturated = int((wrapped > SATURATION_FRACTION * math.pi).sum())
        if saturated:
            flags.append(f"{where}: {saturated} of {wrapped.size} rotation angles are at a half-turn "
                         f"(|θ| > {SATURATION_FRACTION * 180:g}° after wrapping): ordinary rotations for plain "
                         "angles (θ ± 360° is the same rotation), often a too-high learning rate; only the tanh "
                         "form (θ = π·tanh φ) saturates there")
        if float(wrapped.max()) < STILL_ANGLE:
            flags.append(f"{where}: the rotation never moved (every |θ| < {STILL_ANGLE:g} rad): untrained, "
                         "or no gradient reached this layer")
    dev = row.get("orth dev")
    if dev is not None and dev > ORTH_DEV_THRESHOLD:
        flags.append(f"{where}: orthogonality deviation {dev:.3g} is above {ORTH_DEV_THRESHOLD:g} "
                     f"(||MᵀM − I||_F/√d): {ORTH_DEV_MEANING.get(method, 'no longer a rotation')}")
    if scales is not None and scales.size:
        median = float(np.median(scales))
        outside = (scales < SCALE_RANGE[0]) | (scales > SCALE_RANGE[1])
        if median > 0:
            outside |= (scales > SCALE_MEDIAN_FACTOR * median) | (scales < median / SCALE_MEDIAN_FACTOR)
        if outside.any():
            flags.append(f"{where}: {int(outside.sum())} of {scales.size} scales are outliers (outside "
                         f"[{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}] or more than {SCALE_MEDIAN_FACTOR:g}x from "
                         f"the median {median:.3g}); range {scales.min():.3g} to {scales.max():.3g}")
    if row.get("reflections"):
        flags.append(f"{where}: {row['reflections']} blocks became reflections (det < 0), not rotations")
