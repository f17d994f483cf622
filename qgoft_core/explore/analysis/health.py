"""Health checks of an adapted layer, per kind of adapter, and their thresholds.

Each kind of adapter gets the checks that mean something for it
(`checks_for`): a LoRA update is never asked about rotations, and a rotation
check says what its failure means for that method (a strict Givens rotation
is orthogonal by construction, PEFT OFT's Cayley-Neumann series only
approximately, BOFT's exact Cayley to float error). The report lists which
checks ran, so that "no flag" is never read as "healthy" when nothing was
checked.

Orthogonality has one definition across the app (Train's charts and Inspect):
the normalised deviation ||MᵀM − I||_F / √d of the input-side operator M,
regarded as orthogonal up to `ORTH_TOLERANCE` = 1e-5. Normalised, because
float32 rounding gives every entry of MᵀM − I an error of about eps32/2 ≈ 6e-8
whatever d is, so the raw norm grows like √d (measured on GOFT operators built
in float32: raw 3e-7 at d = 32, 1.1e-6 at d = 384, 4e-6 at d = 4096; normalised
6e-8 at every d). 1e-5 is about 160 times that rounding floor at any width,
yet far below any real drift (a qGOFT block moved by 1e-4 already exceeds it).

The thresholds are explicit constants so that the app and the docs can quote
them (`threshold_text`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

SATURATION_FRACTION = 0.95  # wrapped |theta| > 0.95 pi: a rotation at a half-turn
STILL_ANGLE = 1e-6  # radians: every angle of a layer below this = the rotation never moved
ORTH_TOLERANCE = 1e-5  # ||M^T M - I||_F / sqrt(d) up to this = orthogonal (float32 rounding is ~6e-8)
ORTH_DEV_THRESHOLD = ORTH_TOLERANCE  # the former name, kept for callers
SCALE_RANGE = (0.5, 2.0)  # a learned scale outside this range is an outlier
SCALE_MEDIAN_FACTOR = 1.5  # ... and so is one more than 1.5x above (or below) the layer's median
LORA_UPDATE_RATIO = 0.5  # ||Delta W||_F / ||W||_F above this: the update rewrites the layer
RANK_COLLAPSE_FRACTION = 0.25  # LoRA effective rank below max(1.1, this * r) = rank collapse
RANK_COLLAPSE_FLOOR = 1.1


@dataclass(frozen=True)
class Check:
    """One health check: what it looks at and the rule that raises its flag."""

    key: str
    label: str
    rule: str
    needs_base: bool = False


CHECKS = {c.key: c for c in (
    Check("finite", "non-finite values", "any NaN or infinite number in the layer's tensors"),
    Check("half_turn", "angles at a half-turn", f"wrapped |θ| > {SATURATION_FRACTION:g}π"),
    Check("wrapped", "angles stored past a half-turn", "stored plain |θ| > π (the value wraps around)"),
    Check("still", "rotation never moved", f"every |θ| < {STILL_ANGLE:g} rad"),
    Check("orthogonal", "orthogonality", f"‖MᵀM − I‖_F/√d > {ORTH_TOLERANCE:g}"),
    Check("reflections", "reflections", "blocks with det < 0"),
    Check("scales", "scale outliers", f"scales outside [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}] or more than "
                                      f"{SCALE_MEDIAN_FACTOR:g}x from the layer's median"),
    Check("lora_untrained", "LoRA update still zero", "B (or the product B A) is all zeros"),
    Check("lora_rank", "effective-rank collapse", f"effective rank < max({RANK_COLLAPSE_FLOOR:g}, "
                                                  f"{RANK_COLLAPSE_FRACTION:g}·r) with r ≥ 2"),
    Check("lora_size", "update size vs the base weight", f"‖ΔW‖_F/‖W‖_F > {LORA_UPDATE_RATIO:g}",
          needs_base=True),
)}

# What each kind of adapter is checked for. qGOFT is quasi-orthogonal by design: its
# orthogonality is reported (a note and the table), not flagged.
METHOD_CHECKS = {
    "goft": ("finite", "half_turn", "wrapped", "still", "orthogonal", "scales"),
    "qgoft": ("finite", "half_turn", "still", "reflections", "scales"),
    "oft": ("finite", "half_turn", "still", "orthogonal", "reflections"),
    "boft": ("finite", "half_turn", "still", "orthogonal", "reflections", "scales"),
    "lora": ("finite", "lora_untrained", "lora_rank", "lora_size"),
}

ORTH_DEV_MEANING = {
    "goft": "a strict Givens rotation is orthogonal by construction: the stored angles are broken",
    "oft_neumann": ("PEFT applies the truncated Cayley-Neumann series, which is orthogonal only while the "
                    "rotation is small: this one is too large for the series, so the layer is not a rotation"),
    "oft": "an exact Cayley rotation is orthogonal to float error: the stored blocks are broken",
    "boft": "an exact Cayley rotation is orthogonal to float error: the stored blocks are broken",
}
HALF_TURN_MEANING = {
    "goft": ("ordinary rotations for plain angles (θ ± 360° is the same rotation), often a too-high learning "
             "rate; only the tanh form (θ = π·tanh φ) saturates there"),
    "qgoft": "the blocks' rotation factors turned about half-way round: often a too-high learning rate",
    "oft": ("a Cayley rotation reaches a half-turn only as its skew parameter grows without bound: very "
            "large stored values, often a too-high learning rate"),
    "boft": ("a Cayley rotation reaches a half-turn only as its skew parameter grows without bound: very "
             "large stored values, often a too-high learning rate"),
}


def checks_for(method: str, angle_param: Optional[str] = None) -> tuple[str, ...]:
    """The check keys that apply to this kind of adapter (empty for one no check applies to)."""
    keys = METHOD_CHECKS.get(method, ())
    if method == "goft" and angle_param == "tanh":
        keys = tuple(k for k in keys if k != "wrapped")  # π·tanh φ never passes a half-turn
    return keys


def checks_summary(ran: list[str], skipped: dict[str, str]) -> str:
    """One sentence: which checks ran, which did not and why; never 'healthy' when none ran."""
    if not ran:
        text = "no health check applies to this adapter, so nothing was checked (this is not a sign of health)"
    else:
        text = "checks run: " + ", ".join(CHECKS[k].label for k in ran)
    if skipped:
        text += "; not run: " + ", ".join(f"{CHECKS[k].label} ({why})" for k, why in skipped.items())
    return text


def threshold_text(method: Optional[str] = None) -> str:
    """The rules of the checks (of one method, or all of them)."""
    keys = checks_for(method) if method else tuple(CHECKS)
    return "; ".join(f"{CHECKS[k].label}: {CHECKS[k].rule}" for k in keys)


def wrap_angles(angles: np.ndarray) -> np.ndarray:
    """Radians into [-pi, pi): a rotation by a + 2 pi is the same rotation."""
    return np.mod(np.asarray(angles, dtype=float) + math.pi, 2 * math.pi) - math.pi


def health_flags(row: dict, angles: Optional[np.ndarray], scales: Optional[np.ndarray], method: str,
                 checks: tuple[str, ...], neumann: bool = False, rotation_dev: Optional[float] = None) -> None:
    """Append the layer's problems, one sentence each, to row["_flags"] (the layer's name is added later).

    rotation_dev: the orthogonality deviation of the rotation alone where the
    table's "orth dev" includes a scale (GOFT* input scaling).
    """
    flags = row["_flags"]
    if row.get("_broken"):
        return  # non-finite tensors: flagged already, nothing else can be measured
    if angles is not None and angles.size:
        angles = np.asarray(angles, dtype=float)
        wrapped = np.abs(wrap_angles(angles))
        if "wrapped" in checks:
            past = np.abs(angles) > math.pi * (1 + 1e-9)
            if past.any():
                flags.append(f"{int(past.sum())} of {angles.size} stored angles are past a half-turn (plain "
                             f"|θ| up to {math.degrees(float(np.abs(angles).max())):.4g}°): the stored value "
                             "wraps around (θ − 360° is the same rotation) and is shown wrapped into ±180°; "
                             "angles that large mean the rotation spun round, often a too-high learning rate")
        saturated = int((wrapped > SATURATION_FRACTION * math.pi).sum())
        if "half_turn" in checks and saturated:
            flags.append(f"{saturated} of {wrapped.size} rotation angles are at a half-turn "
                         f"(|θ| > {SATURATION_FRACTION * 180:g}° after wrapping): "
                         f"{HALF_TURN_MEANING.get(method, '')}")
        if "still" in checks and float(wrapped.max()) < STILL_ANGLE:
            flags.append(f"the rotation never moved (every |θ| < {STILL_ANGLE:g} rad): untrained, "
                         "or no gradient reached this layer")
    dev = rotation_dev if rotation_dev is not None else row.get("orth dev")
    if "orthogonal" in checks and dev is not None and dev > ORTH_TOLERANCE:
        meaning = ORTH_DEV_MEANING.get("oft_neumann" if method == "oft" and neumann else method,
                                       "no longer a rotation")
        flags.append(f"orthogonality deviation {dev:.3g} is above {ORTH_TOLERANCE:g} (‖MᵀM − I‖_F/√d"
                     f"{' of the rotation without its scale' if rotation_dev is not None else ''}): {meaning}")
    if "scales" in checks and scales is not None and scales.size:
        median = float(np.median(scales))
        outside = (scales < SCALE_RANGE[0]) | (scales > SCALE_RANGE[1])
        if median > 0:
            outside |= (scales > SCALE_MEDIAN_FACTOR * median) | (scales < median / SCALE_MEDIAN_FACTOR)
        if outside.any():
            flags.append(f"{int(outside.sum())} of {scales.size} scales are outliers (outside "
                         f"[{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}] or more than {SCALE_MEDIAN_FACTOR:g}x from "
                         f"the median {median:.3g}); range {scales.min():.3g} to {scales.max():.3g}")
    if "reflections" in checks and row.get("reflections"):
        flags.append(f"{row['reflections']} blocks became reflections (det < 0), not rotations")


def lora_flags(row: dict, b_is_zero: bool, checks: tuple[str, ...]) -> None:
    """LoRA's own checks from the adapter alone: an update still zero, a collapsed effective rank."""
    if row.get("_broken"):
        return
    flags, rank, r = row["_flags"], row.get("eff. rank"), row.get("n/r")
    if "lora_untrained" in checks and rank == 0.0:
        flags.append("lora_B is still all zeros (PEFT's initialisation): the update B A is zero and this layer "
                     "never moved (untrained, or no gradient reached it)" if b_is_zero else
                     "the LoRA update B A is exactly zero: this layer never moved")
    elif "lora_rank" in checks and rank is not None and r and r >= 2 \
            and rank < max(RANK_COLLAPSE_FLOOR, RANK_COLLAPSE_FRACTION * r):
        flags.append(f"effective rank {rank:.3g} of a rank-{r} update (below "
                     f"max({RANK_COLLAPSE_FLOOR:g}, {RANK_COLLAPSE_FRACTION:g}·r)): the update collapsed onto "
                     "about one direction; the other rank is wasted")


def update_size_flag(row: dict, method: str, checks: tuple[str, ...]) -> None:
    """With the base: a LoRA update large next to the pretrained weight."""
    ratio = row.get("‖ΔW‖/‖W‖")
    if method == "lora" and "lora_size" in checks and ratio is not None and ratio > LORA_UPDATE_RATIO:
        row["_flags"].append(f"the update is {ratio:.3g} times the size of the pretrained weight "
                             f"(‖ΔW‖_F/‖W‖_F > {LORA_UPDATE_RATIO:g}): the layer is largely rewritten, which "
                             "risks forgetting; often a too-high learning rate or lora_alpha")
