"""Which column holds the text, which the label, and which (if any) the split.

Columns a person names must exist (the exact name, or the same name in another
case); the others are detected by name, or else by content. Standard library
only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qgoft_core.explore.data.errors import DataFileError, quoted
from qgoft_core.explore.data.parse import union_keys

__all__ = ["LABEL_COLUMN_NAMES", "SPLIT_COLUMN_NAMES", "TEXT_COLUMN_NAMES", "ColumnChoice", "detect_columns", "find_column"]

TEXT_COLUMN_NAMES: tuple[str, ...] = (
    "text", "sentence", "review", "content", "document", "utterance", "question",
)
LABEL_COLUMN_NAMES: tuple[str, ...] = (
    "label", "labels", "class", "category", "target", "sentiment", "topic", "y",
)
SPLIT_COLUMN_NAMES: tuple[str, ...] = ("split",)

_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class ColumnChoice:
    """The columns used for the text, the label and (optionally) the split."""

    text: str
    label: str
    split: str | None = None


def _resolve(given: str, columns: Sequence[Any], role: str, source: str) -> str:
    if given in columns:
        return given
    folded = [c for c in columns if isinstance(c, str) and c.strip().casefold() == str(given).strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise DataFileError(
        f"{source}: there is no column {given!r} (asked for as the {role} column); "
        f"columns found: {quoted(columns) or 'none'}"
    )


def find_column(columns: Sequence[Any], names: Sequence[str], exclude: set) -> Any:
    """The first of ``names`` among ``columns`` (any case), not in ``exclude``; None if none."""
    candidates = [c for c in columns if c not in exclude and isinstance(c, str)]
    for name in names:
        if name in candidates:
            return name
        for c in candidates:
            if c.strip().casefold() == name:
                return c
    return None


def _longest_string_column(rows: Sequence[Mapping], columns: Sequence[Any]) -> Any:
    best, best_score = None, 0.0
    n_rows = max(len(rows), 1)
    for column in columns:
        total, wordy = 0, False
        for row in rows:
            value = row.get(column) if isinstance(row, Mapping) else None
            if isinstance(value, str) and value.strip():
                total += len(value)
                if not wordy and not _NUMBER_RE.fullmatch(value.strip()):
                    wordy = True
        score = total / n_rows
        if wordy and score > best_score:
            best, best_score = column, score
    return best


def detect_columns(
    rows: Sequence[Mapping[str, Any]],
    text_column: str | None = None,
    label_column: str | None = None,
    split_column: str | None = None,
    *,
    columns: Sequence[str] | None = None,
    source: str = "data",
    hint: str = "",
    header_hint: bool = False,
) -> ColumnChoice:
    """Choose the text, label and split columns of ``rows`` (dicts).

    Given columns must exist (an exact name, or the same name in another
    case). Otherwise: the text column is the first of
    :data:`TEXT_COLUMN_NAMES` present (any case), else the column of strings
    (not numbers) with the longest average length; the label column is the
    first of :data:`LABEL_COLUMN_NAMES` present, else the one column left
    besides text and split; the split column is a column named ``split``,
    if any. ``columns`` defaults to the keys of the rows, in order of first
    appearance. Raises :class:`DataFileError`, naming ``source``.
    """
    if header_hint:
        hint = " The first line of the file must be a header that names the columns." + hint
    rows = list(rows)
    cols = list(columns) if columns is not None else union_keys(rows)
    if not cols:
        raise DataFileError(f"{source}: no columns found.{hint}".rstrip())
    text = _resolve(text_column, cols, "text", source) if text_column is not None else None
    label = _resolve(label_column, cols, "label", source) if label_column is not None else None
    split = _resolve(split_column, cols, "split", source) if split_column is not None else None
    if split is None:
        split = find_column(cols, SPLIT_COLUMN_NAMES, exclude={text, label})
    if text is None:
        text = find_column(cols, TEXT_COLUMN_NAMES, exclude={label, split})
    if label is None:
        label = find_column(cols, LABEL_COLUMN_NAMES, exclude={text, split})
    if text is None:
        text = _longest_string_column(rows, [c for c in cols if c not in (label, split)])
    if text is None:
        raise DataFileError(
            f"{source}: no text column found: no column is named {', '.join(TEXT_COLUMN_NAMES)} "
            f"and no column holds text; columns found: {quoted(cols)}. "
            f"Choose the text column (text_column=...).{hint}"
        )
    if label is None:
        rest = [c for c in cols if c not in (text, split)]
        if len(rest) == 1:
            label = rest[0]
    if label is None:
        raise DataFileError(
            f"{source}: no label column found: no column is named {', '.join(LABEL_COLUMN_NAMES)}; "
            f"columns found: {quoted(cols)}. Choose the label column (label_column=...).{hint}"
        )
    if text == label:
        raise DataFileError(f"{source}: the column {text!r} cannot be both the text and the label column")
    if split in (text, label):
        raise DataFileError(f"{source}: the column {split!r} cannot be both the split column and the {'text' if split == text else 'label'} column")
    return ColumnChoice(text=text, label=label, split=split)
