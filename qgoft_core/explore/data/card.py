"""The card of a task built from a person's data: a short Markdown description.

:attr:`TextTask.card <qgoft_core.explore.data.tasks.TextTask.card>` is Markdown
(the built-in tasks' cards are too); this module is the only place where the
user-data loaders write markup. Names taken from the data (file, columns,
labels) are escaped here, so a label such as ``<b>`` or ``*good*`` shows as
written. Error messages and warnings stay plain text (see ``errors.py``).
Standard library only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Origin", "task_card"]


@dataclass(frozen=True)
class Origin:
    """Where a task's rows came from."""

    kind: str  # "file", "records" (in memory) or "hub"
    name: str = ""  # the file name or the Hub dataset name
    format: str = ""  # a file's format: "CSV", "TSV" or "JSON Lines"
    config: str | None = None  # a Hub dataset's configuration
    splits: tuple[str, str] | None = None  # the Hub (train, test) splits used as they are

    def splits_text(self) -> str:
        """The given splits, in plain text (for messages)."""
        if self.splits is None:
            return "the splits"
        train, test = self.splits
        return f"the dataset's {train!r} and {test!r} splits"


def _md(text: Any) -> str:
    """Escape markdown (and HTML) in a name taken from a person's data."""
    out = re.sub(r"([\\`*_{}\[\]#|!])", r"\\\1", str(text))
    return out.replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _code(text: Any) -> str:
    """A name shown inside a Markdown code span."""
    return str(text).replace("`", "'").replace("\n", " ")


def _source(origin: Origin) -> str:
    if origin.kind == "file":
        return f"your {origin.format} file `{_code(origin.name)}`"
    if origin.kind == "hub":
        config = f", config `{_code(origin.config)}`" if origin.config else ""
        return f"Hugging Face dataset `{_code(origin.name)}`{config}"
    return "rows given in memory"


def task_card(
    *,
    name: str,
    origin: Origin,
    text_column: str,
    label_column: str,
    split_column: str | None,
    presplit: bool,
    test_fraction: float,
    seed: int,
    label_names: Sequence[str],
    train_labels: Sequence[int],
    test_labels: Sequence[int],
    skipped: int,
) -> str:
    """The Markdown card: source, rows used and skipped, columns, how the rows were split, labels.

    ``split_column`` is the split column that was used; ``presplit``: the rows
    came split (``origin.splits``); otherwise they were split at random with
    ``test_fraction`` and ``seed``.
    """
    if split_column is not None:
        split = f"from the column `{_code(split_column)}`"
    elif presplit:
        split = (
            f"the dataset's `{_code(origin.splits[0])}` and `{_code(origin.splits[1])}` splits"
            if origin.splits is not None else "given"
        )
    else:
        split = f"random, stratified by label: {test_fraction:.0%} test (seed {seed})"
    train_counts, test_counts = Counter(train_labels), Counter(test_labels)
    label_lines = "\n".join(
        f"- {i} = {_md(n)} ({train_counts[i]} train / {test_counts[i]} test)"
        for i, n in enumerate(label_names)
    )
    split_part = f", split = `{_code(split_column)}`" if split_column is not None else ""
    n_train, n_test = len(train_labels), len(test_labels)
    return (
        f"**{_md(name)}** ({_source(origin)}).\n\n"
        f"*Rows:* {n_train + n_test} used ({n_train} train / {n_test} test), {skipped} skipped.\n\n"
        f"*Columns:* text = `{_code(text_column)}`, label = `{_code(label_column)}`{split_part}.\n\n"
        f"*Split:* {split}.\n\n"
        f"*Labels:*\n{label_lines}\n"
    )
