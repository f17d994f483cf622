"""What a GOFT / qGOFT adapter is made of, validated once at construction."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Union

METHODS = ("goft", "qgoft")
SCALINGS = (None, "output", "input")
ANGLE_PARAMS = ("plain", "tanh")


@dataclass
class QGOFTConfig:
    """Configuration of a GOFT (strict Givens) or qGOFT (quasi-Givens) adapter.

    method: "goft" learns d - 1 angles per layer (exactly orthogonal); "qgoft"
        learns d - 1 free 2 x 2 blocks (4(d - 1) numbers), trained with the
        penalty reg_lambda * sum <alpha, beta>^2 added to the loss.
    reg_lambda: weight of that penalty (qgoft only). It only asks each block's
        two columns alpha, beta to be perpendicular; their lengths are free and
        compound through the tree (with all angles 0 and every block c * I,
        input i is scaled by c to the number of levels that touch it), so the
        operator is not kept orthogonal nor the hyperspherical energy kept, even
        with the penalty exactly 0. A larger reg_lambda straightens the blocks'
        shear, not their lengths.
    target_modules: name suffixes (["query", "value"]), a regex matched against
        the full module name, or None for all attention and MLP projections of
        known architectures.
    scaling: None; "output" (one scale per neuron: keeps angles between neurons
        and hyperspherical energy); "input" (the paper's GOFT*: one scale per
        input dimension; does not keep hyperspherical energy).
    angle_param: how GOFT stores its angles: "plain" (theta in radians; +-pi is
        an ordinary half-turn with a non-zero gradient, and an angle past it is the
        same rotation as theta -+ 2 pi, i.e. wrapped) or "tanh" (theta = pi *
        tanh(phi), the authors' choice, bounded in (-pi, pi); it saturates near
        +-pi, where the gradient of tanh vanishes).
    block_levels: how many tree levels the fast forward fuses per stage.
    modules_to_save: modules trained in full and saved with the adapter (e.g. a
        classification head).
    """

    method: str = "qgoft"
    target_modules: Optional[Union[list[str], str]] = None
    scaling: Optional[str] = None
    reg_lambda: float = 0.01
    modules_to_save: Optional[list[str]] = None
    angle_param: str = "plain"
    block_levels: int = 4
    base_model_name_or_path: Optional[str] = None
    exclude_modules: Optional[list[str]] = field(default=None)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r}; choose None, 'output' or 'input'")
        if self.angle_param not in ANGLE_PARAMS:
            raise ValueError(f"unknown angle_param {self.angle_param!r}; choose 'plain' or 'tanh'")
        if self.angle_param == "tanh" and self.method != "goft":
            raise ValueError("angle_param='tanh' only applies to method='goft' (qgoft blocks have no angle)")
        lam = float(self.reg_lambda)
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"reg_lambda must be a finite number >= 0, got {self.reg_lambda!r}")
        self.reg_lambda = lam
        if not isinstance(self.block_levels, int) or not 1 <= self.block_levels <= 6:
            raise ValueError(f"block_levels must be an integer in 1..6, got {self.block_levels!r}")
        if isinstance(self.target_modules, (set, tuple)):
            self.target_modules = sorted(self.target_modules)
        if self.modules_to_save is not None:
            self.modules_to_save = list(self.modules_to_save)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QGOFTConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
