"""A person's own text-classification data: a CSV / TSV / JSON Lines file, or a Hub dataset.

The public face of the user-data loaders; the work is done in modules along
its seams, each with one idea:

- ``errors``:  :class:`DataFileError` and the skip policy (plain-text messages);
- ``parse``:   a file's bytes or in-memory records -> rows (decoding, limits, CSV / JSON Lines);
- ``columns``: which column is the text, the label, the split (:func:`detect_columns`);
- ``labels``:  label values -> class ids;
- ``splits``:  rows -> a :class:`TextTask`, split train / test (:func:`task_from_records`);
- ``card``:    the task's Markdown card;
- ``files``:   a data file -> a task;  ``hub``: a Hugging Face dataset -> a task.

Pure Python (standard library only; the optional ``datasets`` package is
imported only by :func:`load_hub_dataset`): no torch, no gradio.

Every problem with the data raises :class:`DataFileError`, whose message names
the file, the line number(s) and what is wrong, in plain text, so an app or the
command line can show it to a person (an app that renders Markdown escapes it
first). Rows with problems are never dropped silently: when at most 5% of the
rows are bad (and at least 10 good rows remain) they are skipped and reported
by :func:`load_text_file_with_report`; otherwise loading fails with the first
problems listed.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> rows = [f"{'good' if i % 2 else 'bad'} film number {i},{'pos' if i % 2 else 'neg'}" for i in range(20)]
>>> _ = (folder / "films.csv").write_text("text,label\\n" + "\\n".join(rows) + "\\n")
>>> task = load_text_file(folder / "films.csv")
>>> task.name, task.label_names, len(task.train_texts), len(task.test_texts)
('films', ('neg', 'pos'), 16, 4)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import ParamSpec

from qgoft_core.explore.data.columns import (
    LABEL_COLUMN_NAMES,
    SPLIT_COLUMN_NAMES,
    TEXT_COLUMN_NAMES,
    ColumnChoice,
    detect_columns,
)
from qgoft_core.explore.data.errors import MAX_BAD_FRACTION, MAX_LISTED, DataFileError
from qgoft_core.explore.data.files import load_text_file_with_report
from qgoft_core.explore.data.hub import load_hub_dataset_with_report
from qgoft_core.explore.data.parse import SUPPORTED_SUFFIXES
from qgoft_core.explore.data.splits import MIN_ROWS, task_from_records
from qgoft_core.explore.data.tasks import TextTask

__all__ = [
    "LABEL_COLUMN_NAMES",
    "MAX_BAD_FRACTION",
    "MAX_LISTED",
    "MIN_ROWS",
    "SPLIT_COLUMN_NAMES",
    "SUPPORTED_SUFFIXES",
    "TEXT_COLUMN_NAMES",
    "ColumnChoice",
    "DataFileError",
    "detect_columns",
    "load_hub_dataset",
    "load_hub_dataset_with_report",
    "load_text_file",
    "load_text_file_with_report",
    "task_from_records",
]

_P = ParamSpec("_P")


def _task_only(
    with_report: Callable[_P, tuple[TextTask, list[str]]], name: str, doc: str,
) -> Callable[_P, TextTask]:
    """``with_report`` without the warnings: the same parameters, only the task returned."""

    def load(*args: _P.args, **kwargs: _P.kwargs) -> TextTask:
        task, _warnings = with_report(*args, **kwargs)
        return task

    load.__name__ = load.__qualname__ = name
    load.__doc__ = doc
    load.__signature__ = inspect.signature(with_report).replace(return_annotation="TextTask")  # type: ignore[attr-defined]
    return load


load_text_file = _task_only(load_text_file_with_report, "load_text_file", """\
Load a CSV / TSV / JSON Lines file as a :class:`TextTask`.

Rows with problems (at most 5%) are skipped; use
:func:`load_text_file_with_report` (same parameters) to get them. Raises
:class:`DataFileError` when the file cannot be used.
""")

load_hub_dataset = _task_only(load_hub_dataset_with_report, "load_hub_dataset", """\
Load a text-classification dataset from the Hugging Face Hub (needs ``datasets``).

The task of :func:`load_hub_dataset_with_report` (same parameters), which
also returns the rows that were skipped. Every problem raises
:class:`DataFileError`.
""")
