"""The Train tab's settings in a shareable link, and teacher mode.

A link is a versioned query string: ``?v=1&method=goft&lr=0.002&hide=model,method``.
Reading one never trusts it: every value is validated, numbers are clamped to
the range the controls allow, unknown keys and values are dropped, and a link
of another version opens with the defaults. Whatever was changed is listed in
notices the page shows, so a visitor knows the link was not taken as it was.

``hide`` is teacher mode: the named controls are not shown to whoever opens the
link, and keep the values the link gives them; the student's page lists those
values read-only and leaves out the hints that need them (``ui.train.teacher``).
A link writes every hidden setting's value, defaults included, so what a teacher
fixed today stays fixed if the app's defaults change later.

Pure Python (no Gradio): the Train tab turns a :class:`LinkState` into
component updates.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional
from urllib.parse import urlencode

from qgoft_core.explore.registry import METHODS
from qgoft_core.explore.models import DEFAULT_MODEL_ID

SCHEMA_VERSION = 1
MAX_VALUE_CHARS = 200  # longer values are garbage by construction
MAX_KEYS = 40  # a query with more keys than this is not one of our links

TASKS = ("sentiment", "topic")
SCALINGS = ("none", "output", "input")
LAYER_GROUPS = ("all", "attention", "mlp")
HEATMAP_SCALES = ("global", "layer")
TABS = ("train", "compare", "inspect", "playground", "lessons", "learn")
# Controls a teacher can hide; names are the link keys of the settings they hold.
HIDEABLE = ("model", "task", "upload", "method", "scaling", "layers", "lam", "lr", "bs", "steps",
            "seed", "export", "share")

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[\w.-]{1,96})?")
_MODULE_PATH = re.compile(r"[\w.]{1,200}")


@dataclass(frozen=True)
class NumberField:
    default: float
    low: float
    high: float
    integer: bool = False


NUMBERS: dict[str, NumberField] = {
    "lam": NumberField(0.01, 0.0, 10.0),
    "lr": NumberField(2e-3, 1e-6, 1.0),
    "bs": NumberField(16, 1, 128, integer=True),
    "steps": NumberField(60, 1, 2000, integer=True),  # high: replaced by the server's step cap
    "seed": NumberField(0, 0, 2**31 - 1, integer=True),
}
CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {  # key -> (default, allowed)
    "task": ("sentiment", TASKS),
    "method": ("qgoft", METHODS),
    "scaling": ("none", SCALINGS),
    "layers": ("all", LAYER_GROUPS),
    "scale": ("global", HEATMAP_SCALES),
    "tab": ("train", TABS),
}
TEXTS = ("model", "layer")
KNOWN_KEYS = {"v", "hide", *NUMBERS, *CHOICES, *TEXTS}


def default_values(max_steps: Optional[int] = None) -> dict[str, Any]:
    values: dict[str, Any] = {key: spec.default for key, spec in NUMBERS.items()}
    for key in ("bs", "steps", "seed"):
        values[key] = int(values[key])
    if max_steps is not None:
        values["steps"] = min(values["steps"], max_steps)
    values.update({key: default for key, (default, _) in CHOICES.items()})
    values.update(model=DEFAULT_MODEL_ID, layer="")
    return values


@dataclass
class LinkState:
    """What a link asks for, after validation."""

    values: dict[str, Any]
    hidden: set[str] = field(default_factory=set)
    notices: list[str] = field(default_factory=list)
    given: set[str] = field(default_factory=set)  # keys the link set (valid ones)

    @property
    def notice_markdown(self) -> str:
        if not self.notices:
            return ""
        items = "\n".join(f"- {n}" for n in self.notices)
        return f"**This link was not used exactly as written.** Safe values were used instead:\n{items}"


def _shown(text: str, limit: int = 40) -> str:
    """A value from the link, safe to echo inside a Markdown code span (no backticks, no markup)."""
    return re.sub(r"[`<>\\\x00-\x1f]", "?", text[:limit])


def _clean(raw: Any) -> str:
    if isinstance(raw, (list, tuple)):  # a repeated key: the last one wins, like most sites
        raw = raw[-1] if raw else ""
    return str(raw).strip()[:MAX_VALUE_CHARS + 1]


def _number(key: str, text: str, spec: NumberField, high: float, notices: list[str]) -> Any:
    try:
        value = float(text)
    except ValueError:
        notices.append(f"`{key}` = `{_shown(text)}` is not a number; using {spec.default:g}")
        return int(spec.default) if spec.integer else spec.default
    if not math.isfinite(value):
        notices.append(f"`{key}` = `{_shown(text)}` is not a finite number; using {spec.default:g}")
        return int(spec.default) if spec.integer else spec.default
    clamped = min(max(value, spec.low), high)
    if spec.integer:
        clamped = int(round(clamped))
    if clamped != value:
        notices.append(f"`{key}` = {value:g} is outside {spec.low:g} … {high:g}; using {clamped:g}")
    return clamped


def _model(text: str, allowed: Optional[list[str]], notices: list[str]) -> str:
    if text in ("", "default", DEFAULT_MODEL_ID):
        return DEFAULT_MODEL_ID
    if allowed is not None and text not in allowed:
        notices.append(f"model `{_shown(text, 60)}` is not offered on this server; using the default model")
        return DEFAULT_MODEL_ID
    # Links carry hub ids only: never a path on the server's disk.
    if not _HUB_ID.fullmatch(text) or ".." in text:
        notices.append(f"model `{_shown(text, 60)}` is not a model id; using the default model")
        return DEFAULT_MODEL_ID
    return text


def parse_link(query: Mapping[str, Any], max_steps: int = 2000,
               allowed_models: Optional[list[str]] = None) -> LinkState:
    """Validate a link's query parameters; never raises, whatever the input."""
    values = default_values(max_steps)
    state = LinkState(values)
    try:
        items = {str(k)[:40]: _clean(v) for k, v in dict(query).items()}
    except Exception:  # noqa: BLE001 - a query we cannot even read: defaults
        state.notices.append("the link could not be read; all settings are at their defaults")
        return state
    if not items:
        return state
    if len(items) > MAX_KEYS:
        state.notices.append(f"the link has {len(items)} parameters; all settings are at their defaults")
        return state
    version = items.get("v")
    if version is None:
        if not set(items) & KNOWN_KEYS:
            return state  # some other query string (a Space's own parameters): not ours, say nothing
        state.notices.append("the link has no version (`v`); all settings are at their defaults")
        return state
    if version != str(SCHEMA_VERSION):
        state.notices.append(f"link version `{_shown(version, 20)}` is not supported (this app reads version "
                             f"{SCHEMA_VERSION}); all settings are at their defaults")
        return state

    unknown = sorted(k for k in items if k not in KNOWN_KEYS)
    if unknown:
        shown = ", ".join(f"`{_shown(k)}`" for k in unknown[:8])
        state.notices.append(f"unknown parameter{'s' if len(unknown) > 1 else ''} {shown} ignored")
    for key, text in items.items():
        if key in ("v", "hide") or key in unknown:
            continue
        if len(text) > MAX_VALUE_CHARS:
            state.notices.append(f"`{key}` is too long; using the default")
            continue
        if key in NUMBERS:
            spec = NUMBERS[key]
            high = min(spec.high, max_steps) if key == "steps" else spec.high
            values[key] = _number(key, text, spec, high, state.notices)
        elif key in CHOICES:
            default, allowed = CHOICES[key]
            if text in allowed:
                values[key] = text
            else:
                state.notices.append(f"`{key}` = `{_shown(text)}` is not one of {', '.join(allowed)}; "
                                     f"using {default}")
                continue
        elif key == "model":
            values[key] = _model(text, allowed_models, state.notices)
        elif key == "layer":
            if _MODULE_PATH.fullmatch(text):
                values[key] = text
            else:
                state.notices.append("`layer` is not a layer name; ignored")
                continue
        state.given.add(key)

    if "hide" in items:
        names = [n.strip() for n in items["hide"].split(",") if n.strip()]
        bad = [n for n in names if n not in HIDEABLE]
        state.hidden = {n for n in names if n in HIDEABLE}
        if bad:
            state.notices.append(f"cannot hide {', '.join(f'`{_shown(n, 30)}`' for n in bad[:8])} (hideable: "
                                 f"{', '.join(HIDEABLE)})")
    return state


def build_query(values: Mapping[str, Any], hidden: Optional[set[str] | list[str]] = None,
                max_steps: Optional[int] = None) -> str:
    """``?v=1&...`` for `values`: the settings that differ from the defaults (short links), and
    every hidden (teacher-fixed) setting even at its default, so the link keeps its meaning when
    the defaults change."""
    defaults = default_values(max_steps)
    pinned = set(hidden or ()) & set(HIDEABLE)
    params: dict[str, str] = {"v": str(SCHEMA_VERSION)}
    for key in (*TEXTS, *CHOICES, *NUMBERS):
        if key not in values or values[key] is None:
            continue
        value = values[key]
        if key in NUMBERS:
            spec = NUMBERS[key]
            value = int(value) if spec.integer else float(value)
            if value == defaults[key] and key not in pinned:
                continue
            params[key] = str(value) if spec.integer else f"{value:.6g}"
        else:
            value = str(value)
            if key == "model" and value == "default":
                value = DEFAULT_MODEL_ID
            if value == defaults[key] and key not in pinned:
                continue
            params[key] = value
    hide = [n for n in HIDEABLE if n in pinned]
    if hide:
        params["hide"] = ",".join(hide)
    return "?" + urlencode(params, safe=",/")
