"""A person's CSV / TSV / JSON Lines file -> a :class:`TextTask` (and warnings).

Standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

from qgoft_core.explore.data.card import Origin
from qgoft_core.explore.data.parse import FORMAT_NAMES, csv_hint, parse_csv, parse_json_lines, read_text_file
from qgoft_core.explore.data.splits import assemble, check_fraction
from qgoft_core.explore.data.tasks import TextTask

__all__ = ["load_text_file_with_report"]


def load_text_file_with_report(
    path: str | os.PathLike,
    text_column: str | None = None,
    label_column: str | None = None,
    split_column: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_rows: int = 200_000,
    max_bytes: int = 50 * 1024**2,
) -> tuple[TextTask, list[str]]:
    """Load a CSV / TSV / JSON Lines file as a :class:`TextTask`, and return the warnings.

    The warnings are one line per skipped row (``"line 7: empty text (column
    'text')"``) followed by notes about the data (a ``split`` column that was
    not used, labels that differ only in case, ...). Empty when all is well.
    Raises :class:`DataFileError` when the file cannot be used.

    Columns not given are detected: the text column by name (one of
    :data:`TEXT_COLUMN_NAMES`, any case) or else the column of strings with
    the longest average length; the label column by name (one of
    :data:`LABEL_COLUMN_NAMES`) or else the only column left; a column named
    ``split`` with values train / test / validation gives the split. Without
    one, the rows are split at random, stratified by label, with ``seed`` and
    ``test_fraction`` (every class with 2 or more examples gets at least one
    test example).
    """
    check_fraction(test_fraction)
    p = Path(path)
    display, fmt, text = read_text_file(p, max_bytes)
    hint = ""
    if fmt == "jsonl":
        entries, columns = parse_json_lines(display, text, max_rows)
    else:
        entries, columns = parse_csv(display, text, "\t" if fmt == "tsv" else ",", max_rows)
        hint = csv_hint(fmt, columns)
    return assemble(
        entries, columns, name=p.stem or "data", display=display,
        origin=Origin("file", name=display, format=FORMAT_NAMES[fmt]),
        text_column=text_column, label_column=label_column, split_column=split_column,
        test_fraction=test_fraction, seed=seed, hint=hint, header_hint=fmt != "jsonl",
    )
