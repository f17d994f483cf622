"""A person's own text-classification data: a CSV / TSV / JSON Lines file, or a Hub dataset.

Pure Python (standard library only; the optional ``datasets`` package is
imported only by :func:`load_hub_dataset`): no torch, no gradio.

Every problem with the data raises :class:`DataFileError`, whose message names
the file, the line number(s) and what is wrong, so an app can show it to a
person as it is.  Rows with problems are never dropped silently: when at most
5% of the rows are bad (and at least 10 good rows remain) they are skipped and
reported by :func:`load_text_file_with_report`; otherwise loading fails with
the first problems listed.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> rows = [f"{'good' if i % 2 else 'bad'} film number {i},{'pos' if i % 2 else 'neg'}" for i in range(20)]
>>> _ = (folder / "films.csv").write_text("text,label\\n" + "\\n".join(rows) + "\\n")
>>> task = load_text_file(folder / "films.csv")
>>> task.name, task.label_names, len(task.train_texts), len(task.test_texts)
('films', ('neg', 'pos'), 16, 4)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgoft_core.explore.data.tasks import TextTask

__all__ = [
    "LABEL_COLUMN_NAMES",
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

TEXT_COLUMN_NAMES: tuple[str, ...] = (
    "text", "sentence", "review", "content", "document", "utterance", "question",
)
LABEL_COLUMN_NAMES: tuple[str, ...] = (
    "label", "labels", "class", "category", "target", "sentiment", "topic", "y",
)
SPLIT_COLUMN_NAMES: tuple[str, ...] = ("split",)

# file suffix -> format
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
}
_FORMAT_NAMES = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSON Lines"}

MAX_BAD_FRACTION = 0.05  # rows with problems that may be skipped
MIN_ROWS = 10  # usable rows needed
MAX_LISTED = 10  # problems listed in an error message

_SPLIT_VALUES = {
    "train": "train", "training": "train",
    "test": "test", "testing": "test", "validation": "test", "valid": "test", "val": "test",
    "dev": "test", "eval": "test", "evaluation": "test",
}
_INT_RE = re.compile(r"[+-]?\d+(?:\.0*)?")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


class DataFileError(ValueError):
    """A user's data that cannot be used; the message says where and why.

    ``problems`` holds the row problems behind the error (``"line 7: empty
    text (column 'text')"``), when there are any.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class ColumnChoice:
    """The columns used for the text, the label and (optionally) the split."""

    text: str
    label: str
    split: str | None = None


@dataclass
class _Entry:
    """One data row: where it is, its fields, and its problem (if any)."""

    pos: int  # sort key: line or record number
    where: str  # "line 7", "lines 7-9", "record 3", "train row 5"
    data: Any = None  # dict of fields once parsed
    problem: str | None = None
    split: str | None = None  # "train" / "test" when known (split column or a Hub split)
    text: str = ""
    key: tuple | None = None  # normalized label

    def note(self) -> str:
        return f"{self.where}: {self.problem}"


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------


def load_text_file(
    path: str | os.PathLike,
    text_column: str | None = None,
    label_column: str | None = None,
    split_column: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_rows: int = 200_000,
    max_bytes: int = 50 * 1024**2,
) -> TextTask:
    """Load a CSV / TSV / JSON Lines file as a :class:`TextTask`.

    Rows with problems (at most 5%) are skipped; use
    :func:`load_text_file_with_report` to get them. Raises
    :class:`DataFileError` when the file cannot be used.
    """
    task, _ = load_text_file_with_report(
        path, text_column=text_column, label_column=label_column, split_column=split_column,
        test_fraction=test_fraction, seed=seed, max_rows=max_rows, max_bytes=max_bytes,
    )
    return task


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
    """Like :func:`load_text_file`, and also return the warnings.

    The warnings are one line per skipped row (``"line 7: empty text (column
    'text')"``) followed by notes about the data (a ``split`` column that was
    not used, labels that differ only in case, ...). Empty when all is well.

    Columns not given are detected: the text column by name (one of
    :data:`TEXT_COLUMN_NAMES`, any case) or else the column of strings with
    the longest average length; the label column by name (one of
    :data:`LABEL_COLUMN_NAMES`) or else the only column left; a column named
    ``split`` with values train / test / validation gives the split. Without
    one, the rows are split at random, stratified by label, with ``seed`` and
    ``test_fraction`` (every class with 2 or more examples gets at least one
    test example).
    """
    _check_fraction(test_fraction)
    p = Path(path)
    display = p.name or str(p)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise DataFileError(f"{display}: file not found") from None
    except OSError as exc:
        raise DataFileError(f"{display}: cannot read the file ({exc.strerror or exc})") from None
    if p.is_dir():
        raise DataFileError(f"{display}: is a folder, not a file")
    suffix = p.suffix.lower()
    fmt = SUPPORTED_SUFFIXES.get(suffix)
    if fmt is None:
        raise DataFileError(_unsupported_message(display, suffix))
    if st.st_size > max_bytes:
        raise DataFileError(
            f"{display}: the file is too large ({_size(st.st_size)}; the limit is {_size(max_bytes)})"
        )
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DataFileError(f"{display}: cannot read the file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:  # it grew since stat()
        raise DataFileError(
            f"{display}: the file is too large ({_size(len(data))}; the limit is {_size(max_bytes)})"
        )
    text = _decode(display, data)
    if not text.strip():
        raise DataFileError(f"{display}: the file is empty")

    hint = ""
    if fmt == "jsonl":
        entries, columns = _parse_json_lines(display, text, max_rows)
    else:
        entries, columns = _parse_csv(display, text, "\t" if fmt == "tsv" else ",", max_rows)
        hint = _csv_hint(fmt, columns)
    source = f"your {_FORMAT_NAMES[fmt]} file `{_code(display)}`"
    return _assemble(
        entries, columns, name=p.stem or "data", display=display, source=source,
        text_column=text_column, label_column=label_column, split_column=split_column,
        test_fraction=test_fraction, seed=seed, hint=hint, header_hint=fmt != "jsonl",
    )


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KB", "MB", "GB"):
        n /= 1024
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}"
    raise AssertionError  # unreachable


def _unsupported_message(display: str, suffix: str) -> str:
    kinds = ".csv, .tsv, .jsonl or .json (JSON Lines: one object per line)"
    if not suffix:
        return f"{display}: the file name has no extension; use {kinds}"
    extra = ""
    if suffix in (".xlsx", ".xls", ".ods", ".numbers"):
        extra = "; export the spreadsheet as CSV (UTF-8)"
    elif suffix == ".txt":
        extra = "; if it is comma- or tab-separated, rename it to .csv or .tsv"
    return f"{display}: unsupported file type '{suffix}'; use {kinds}{extra}"


def _decode(display: str, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataFileError(
            f"{display}: not a text file in UTF-8 encoding: it is UTF-16; "
            "save it again as UTF-8 (in Excel: 'CSV UTF-8')"
        )
    if data.startswith(b"PK\x03\x04"):
        raise DataFileError(
            f"{display}: not a text file: it is a zip archive (an Excel workbook?); "
            "export the sheet as CSV (UTF-8)"
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DataFileError(
            f"{display}: not a text file: it holds binary data (a NUL byte at line {line}); "
            "upload a CSV, TSV or JSON Lines text file"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start:exc.start + 1].hex()
        raise DataFileError(
            f"{display}: not a text file in UTF-8 encoding: byte 0x{byte} at line {line} "
            "cannot be decoded; save the file as UTF-8 (in Excel: 'CSV UTF-8')"
        ) from None


def _too_many_rows(display: str, max_rows: int, where: str) -> DataFileError:
    return DataFileError(
        f"{display}: too many rows: more than {max_rows:,} ({where} is row {max_rows + 1:,}); "
        "use a smaller file"
    )


def _parse_csv(display: str, text: str, delimiter: str, max_rows: int) -> tuple[list[_Entry], list[str]]:
    kind = "TSV" if delimiter == "\t" else "CSV"
    sep = "tabs" if delimiter == "\t" else "commas"
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, len(text) + 1))  # long documents are fine
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header: list[str] | None = None
        entries: list[_Entry] = []
        prev = 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise DataFileError(
                    f"{display}: line {reader.line_num}: cannot be read as {kind} ({exc})"
                ) from None
            start, end = prev + 1, reader.line_num
            prev = end
            if not any(f.strip() for f in fields):
                continue  # blank line (or only separators)
            where = f"line {start}" if start == end else f"lines {start}-{end}"
            if header is None:
                header = _header(display, where, fields)
                continue
            if len(entries) >= max_rows:
                raise _too_many_rows(display, max_rows, where)
            entry = _Entry(pos=start, where=where)
            if len(fields) > len(header) and not any(f.strip() for f in fields[len(header):]):
                fields = fields[:len(header)]  # trailing empty fields, as spreadsheets write
            if len(fields) != len(header):
                problem = f"has {len(fields)} fields but the header has {len(header)}"
                if len(fields) > len(header):
                    problem += f" (a text that contains {sep} must be in double quotes)"
                if end > start:
                    problem += f"; an unclosed double quote at line {start} may have joined lines {start}-{end}"
                entry.problem = problem
            else:
                entry.data = dict(zip(header, fields))
            entries.append(entry)
    finally:
        csv.field_size_limit(old_limit)
    if header is None:
        raise DataFileError(f"{display}: the file is empty")
    if not entries:
        raise DataFileError(f"{display}: the file has a header line but no data rows")
    return entries, header


def _header(display: str, where: str, fields: list[str]) -> list[str]:
    names = [f.strip() or f"column {i}" for i, f in enumerate(fields, 1)]
    twice = [n for n, c in Counter(names).items() if c > 1]
    if twice:
        raise DataFileError(
            f"{display}: {where}: the header names the column {twice[0]!r} more than once; "
            "give each column its own name"
        )
    return names


def _csv_hint(fmt: str, columns: list[str]) -> str:
    """A hint about the separator, when the header looks like it uses another one."""
    hint = ""
    if len(columns) == 1:
        if fmt == "csv" and "\t" in columns[0]:
            hint += " The file seems to use tabs between columns: rename it to .tsv."
        elif fmt == "csv" and ";" in columns[0]:
            hint += " The file seems to use semicolons between columns: save it with commas."
        elif fmt == "tsv" and "," in columns[0]:
            hint += " The file seems to use commas between columns: rename it to .csv."
    return hint


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _parse_json_lines(display: str, text: str, max_rows: int) -> tuple[list[_Entry], list[str]]:
    if text.lstrip().startswith("["):  # a JSON list of objects: accepted too
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFileError(
                f"{display}: line {exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "expected JSON Lines (one object per line) or a JSON list of objects"
            ) from None
        if len(items) > max_rows:
            raise _too_many_rows(display, max_rows, f"record {max_rows + 1:,}")
        entries = []
        for i, item in enumerate(items, 1):
            entry = _Entry(pos=i, where=f"record {i}")
            if isinstance(item, dict):
                entry.data = item
            else:
                entry.problem = f"expected a JSON object, found {_json_type(item)}"
            entries.append(entry)
        return entries, _union_keys(e.data for e in entries if e.data is not None)

    entries = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        if len(entries) >= max_rows:
            raise _too_many_rows(display, max_rows, where)
        entry = _Entry(pos=lineno, where=where)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            entry.problem = f"not valid JSON ({exc.msg} at column {exc.colno})"
        else:
            if isinstance(obj, dict):
                entry.data = obj
            else:
                entry.problem = (
                    f'expected a JSON object like {{"text": "...", "label": "..."}}, found {_json_type(obj)}'
                )
        entries.append(entry)
    bad = sum(e.problem is not None for e in entries)
    if entries and entries[0].problem and bad > MAX_BAD_FRACTION * len(entries):
        try:
            whole = json.loads(text)
        except ValueError:
            whole = None
        if isinstance(whole, dict):
            raise DataFileError(
                f"{display}: holds one JSON object spread over several lines; expected JSON Lines: "
                'one object per line, like {"text": "...", "label": "..."}'
            )
    return entries, _union_keys(e.data for e in entries if e.data is not None)


def _union_keys(rows: Iterable[Mapping]) -> list[str]:
    seen: dict[Any, None] = {}
    for row in rows:
        if isinstance(row, Mapping):
            for key in row:
                seen.setdefault(key, None)
    return list(seen)


# ---------------------------------------------------------------------------
# columns
# ---------------------------------------------------------------------------


def _quoted(columns: Sequence[Any]) -> str:
    shown = ", ".join(repr(c) for c in columns[:30])
    return shown + (f" and {len(columns) - 30} more" if len(columns) > 30 else "")


def _resolve(given: str, columns: Sequence[Any], role: str, source: str) -> str:
    if given in columns:
        return given
    folded = [c for c in columns if isinstance(c, str) and c.strip().casefold() == str(given).strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise DataFileError(
        f"{source}: there is no column {given!r} (asked for as the {role} column); "
        f"columns found: {_quoted(columns) or 'none'}"
    )


def _find(columns: Sequence[Any], names: Sequence[str], exclude: set) -> Any:
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
    cols = list(columns) if columns is not None else _union_keys(rows)
    if not cols:
        raise DataFileError(f"{source}: no columns found.{hint}".rstrip())
    text = _resolve(text_column, cols, "text", source) if text_column is not None else None
    label = _resolve(label_column, cols, "label", source) if label_column is not None else None
    split = _resolve(split_column, cols, "split", source) if split_column is not None else None
    if split is None:
        split = _find(cols, SPLIT_COLUMN_NAMES, exclude={text, label})
    if text is None:
        text = _find(cols, TEXT_COLUMN_NAMES, exclude={label, split})
    if label is None:
        label = _find(cols, LABEL_COLUMN_NAMES, exclude={text, split})
    if text is None:
        text = _longest_string_column(rows, [c for c in cols if c not in (label, split)])
    if text is None:
        raise DataFileError(
            f"{source}: no text column found: no column is named {', '.join(TEXT_COLUMN_NAMES)} "
            f"and no column holds text; columns found: {_quoted(cols)}. "
            f"Choose the text column (text_column=...).{hint}"
        )
    if label is None:
        rest = [c for c in cols if c not in (text, split)]
        if len(rest) == 1:
            label = rest[0]
    if label is None:
        raise DataFileError(
            f"{source}: no label column found: no column is named {', '.join(LABEL_COLUMN_NAMES)}; "
            f"columns found: {_quoted(cols)}. Choose the label column (label_column=...).{hint}"
        )
    if text == label:
        raise DataFileError(f"{source}: the column {text!r} cannot be both the text and the label column")
    if split in (text, label):
        raise DataFileError(f"{source}: the column {split!r} cannot be both the split column and the {'text' if split == text else 'label'} column")
    return ColumnChoice(text=text, label=label, split=split)


# ---------------------------------------------------------------------------
# rows -> task
# ---------------------------------------------------------------------------


def _check_fraction(test_fraction: float) -> None:
    if not (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must be between 0 and 1 (both excluded), got {test_fraction!r}")


def _split_value(raw: Any) -> str | None:
    if raw is None:
        return None
    return _SPLIT_VALUES.get(str(raw).strip().casefold())


def _label_key(raw: Any, class_names: Sequence[str] | None) -> tuple[tuple | None, str | None]:
    """(normalized label, None) or (None, what is wrong)."""
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
        return None, f"the label is {_json_type(raw)}; expected a name or a whole number"
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
    return None, f"label {value!r} is not one of the classes ({_quoted(list(class_names))})"


def _label_name(key: tuple) -> str:
    kind, value = key
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


def _map_labels(keys: list[tuple], class_names: Sequence[str] | None) -> tuple[list[int], tuple[str, ...]]:
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


def _problem_lines(bad: list[_Entry]) -> str:
    lines = [f"- {e.note()}" for e in bad[:MAX_LISTED]]
    if len(bad) > MAX_LISTED:
        lines.append(f"- ... and {len(bad) - MAX_LISTED} more")
    return "\n".join(lines)


def _too_many_bad(display: str, bad: list[_Entry], total: int, hint: str) -> DataFileError:
    percent = 100.0 * len(bad) / total
    return DataFileError(
        f"{display}: {len(bad)} of {total} rows have problems ({percent:.0f}%; at most "
        f"{MAX_BAD_FRACTION:.0%} can be skipped), so the data was not loaded:{hint}\n"
        + _problem_lines(bad),
        problems=[e.note() for e in bad],
    )


def _md(text: str) -> str:
    """Escape markdown (and HTML) in a name taken from a person's data."""
    out = re.sub(r"([\\`*_{}\[\]#|!])", r"\\\1", str(text))
    return out.replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _code(text: Any) -> str:
    return str(text).replace("`", "'").replace("\n", " ")


def _assemble(
    entries: list[_Entry],
    columns: list[Any],
    *,
    name: str,
    display: str,
    source: str,
    text_column: str | None,
    label_column: str | None,
    split_column: str | None,
    test_fraction: float,
    seed: int,
    hint: str = "",
    header_hint: bool = False,
    class_names: Sequence[str] | None = None,
    split_source: str | None = None,
    notes: Sequence[str] = (),
) -> tuple[TextTask, list[str]]:
    """Validate parsed rows, map the labels, split, and build the task."""
    _check_fraction(test_fraction)
    notes = list(notes)
    total = len(entries)
    if total == 0:
        raise DataFileError(f"{display}: no data rows")
    bad = [e for e in entries if e.problem is not None]
    if len(bad) > MAX_BAD_FRACTION * total:  # the file itself is broken: say so first
        raise _too_many_bad(display, bad, total, hint)

    good = [e for e in entries if e.problem is None]
    choice = detect_columns(
        [e.data for e in good], text_column, label_column, split_column,
        columns=columns, source=display, hint=hint, header_hint=header_hint,
    )
    split_col = choice.split
    presplit = any(e.split is not None for e in good)
    if presplit:
        split_col = None
    elif split_col is not None and split_column is None:  # found by name: use it only if it fits
        unknown = sorted({str(e.data.get(split_col)) for e in good if _split_value(e.data.get(split_col)) is None})
        if unknown:
            notes.append(
                f"the column {split_col!r} has values other than train / test / validation "
                f"({_quoted(unknown[:5])}), so it was not used: the rows were split at random"
            )
            split_col = None

    for e in good:
        row = e.data
        text = row.get(choice.text)
        if text is None or (isinstance(text, str) and not text.strip()):
            e.problem = f"empty text (column {choice.text!r})"
            continue
        if not isinstance(text, str):
            e.problem = f"the text (column {choice.text!r}) is {_json_type(text)}, not a string"
            continue
        key, problem = _label_key(row.get(choice.label), class_names)
        if problem is not None:
            e.problem = f"{problem} (column {choice.label!r})"
            continue
        if split_col is not None:
            raw = row.get(split_col)
            split = _split_value(raw)
            if split is None:
                if raw is None or not str(raw).strip():
                    e.problem = f"missing split (column {split_col!r})"
                else:
                    e.problem = f"split {str(raw).strip()!r} is not train, test or validation (column {split_col!r})"
                continue
            e.split = split
        e.text, e.key = text, key

    bad = [e for e in entries if e.problem is not None]
    usable = [e for e in entries if e.problem is None]
    if len(bad) > MAX_BAD_FRACTION * total:
        raise _too_many_bad(display, bad, total, hint)
    if len(usable) < MIN_ROWS:
        message = f"{display}: too few rows: only {len(usable)} usable, at least {MIN_ROWS} are needed"
        if bad:
            message += f"; {len(bad)} rows have problems:\n" + _problem_lines(bad)
        raise DataFileError(message, problems=[e.note() for e in bad])

    labels, label_names = _map_labels([e.key for e in usable], class_names)
    counts = Counter(labels)
    if len(counts) < 2:
        (only,) = counts
        raise DataFileError(
            f"{display}: only one class: every usable row has the label {label_names[only]!r} "
            f"(column {choice.label!r}); at least 2 classes are needed"
        )
    if class_names is None:
        by_fold: dict[str, list[str]] = {}
        for n in label_names:
            by_fold.setdefault(n.casefold(), []).append(n)
        for same in by_fold.values():
            if len(same) > 1:
                notes.append(
                    f"the labels {_quoted(same)} differ only in upper/lower case; "
                    "they are treated as different classes"
                )

    if presplit or split_col is not None:
        is_test = [e.split == "test" for e in usable]
        n_test = sum(is_test)
        where = f"column {split_col!r}" if split_col is not None else (split_source or "the splits")
        if n_test == 0:
            raise DataFileError(
                f"{display}: no test rows: every usable row is 'train' in {where}; "
                "mark some rows 'test', or remove the split column to split at random"
            )
        if n_test == len(usable):
            raise DataFileError(
                f"{display}: no training rows: every usable row is 'test' in {where}; "
                "mark some rows 'train', or remove the split column to split at random"
            )
        train_counts = Counter(y for y, t in zip(labels, is_test) if not t)
        missing = [label_names[y] for y in sorted(counts) if train_counts[y] == 0]
        if missing:
            notes.append(f"the classes {_quoted(missing)} have test rows but no training rows")
        split_md = (
            f"from the column `{_code(split_col)}`" if split_col is not None else (split_source or "given")
        )
    else:
        single = [label_names[y] for y in sorted(counts) if counts[y] < 2]
        if single:
            message = (
                f"{display}: {len(single)} class{'es have' if len(single) > 1 else ' has'} only 1 example "
                f"({_quoted(single[:10])}{', ...' if len(single) > 10 else ''}) in column {choice.label!r}; "
                "each class needs at least 2, one to train on and one to test on"
            )
            if len(counts) > len(usable) / 2:
                message += (
                    f". The column {choice.label!r} has {len(counts)} different values in "
                    f"{len(usable)} rows: is it really the label column?"
                )
            raise DataFileError(message)
        rng = random.Random(seed)
        test_ids: set[int] = set()
        for y in sorted(counts):
            members = [i for i, label in enumerate(labels) if label == y]
            n = len(members)
            n_test = min(n - 1, max(1, int(n * test_fraction + 0.5)))
            rng.shuffle(members)
            test_ids.update(members[:n_test])
        is_test = [i in test_ids for i in range(len(usable))]
        split_md = f"random, stratified by label: {test_fraction:.0%} test (seed {seed})"

    train = [(e.text, y) for e, y, t in zip(usable, labels, is_test) if not t]
    test = [(e.text, y) for e, y, t in zip(usable, labels, is_test) if t]
    train_counts, test_counts = Counter(y for _, y in train), Counter(y for _, y in test)
    label_lines = "\n".join(
        f"- {i} = {_md(n)} ({train_counts[i]} train / {test_counts[i]} test)"
        for i, n in enumerate(label_names)
    )
    split_part = f", split = `{_code(split_col)}`" if split_col is not None else ""
    card = (
        f"**{_md(name)}** ({source}).\n\n"
        f"*Rows:* {len(usable)} used ({len(train)} train / {len(test)} test), {len(bad)} skipped.\n\n"
        f"*Columns:* text = `{_code(choice.text)}`, label = `{_code(choice.label)}`{split_part}.\n\n"
        f"*Split:* {split_md}.\n\n"
        f"*Labels:*\n{label_lines}\n"
    )
    task = TextTask(
        name=name,
        label_names=label_names,
        train_texts=tuple(t for t, _ in train),
        train_labels=tuple(y for _, y in train),
        test_texts=tuple(t for t, _ in test),
        test_labels=tuple(y for _, y in test),
        card=card,
    )
    return task, [e.note() for e in bad] + notes


def task_from_records(
    records: Iterable[Mapping[str, Any]],
    *,
    name: str = "data",
    text_column: str | None = None,
    label_column: str | None = None,
    split_column: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    label_names: Sequence[str] | None = None,
) -> tuple[TextTask, list[str]]:
    """Build a task from in-memory rows (dicts), with the rules of :func:`load_text_file_with_report`.

    Problems are reported as ``"record N: ..."`` (1-based). With
    ``label_names``, integer labels are ids into it (-1 = no label) and string
    labels must be among its names.
    """
    entries = []
    for i, record in enumerate(records, 1):
        entry = _Entry(pos=i, where=f"record {i}")
        if isinstance(record, Mapping):
            entry.data = dict(record)
        else:
            entry.problem = f"expected a mapping of column to value, found {_json_type(record)}"
        entries.append(entry)
    return _assemble(
        entries, _union_keys(e.data for e in entries if e.data is not None),
        name=name, display=name, source="rows given in memory",
        text_column=text_column, label_column=label_column, split_column=split_column,
        test_fraction=test_fraction, seed=seed, class_names=label_names,
    )


# ---------------------------------------------------------------------------
# Hugging Face Hub
# ---------------------------------------------------------------------------


def _hub_error_message(display: str, exc: BaseException) -> str:
    kind = type(exc).__name__
    details = " ".join(str(exc).split())
    if len(details) > 300:
        details = details[:300] + "..."
    low = f"{kind} {details}".lower()
    if isinstance(exc, ConnectionError) or any(
        word in low for word in ("offline", "connection", "couldn't reach", "could not reach",
                                 "timed out", "max retries", "network")
    ):
        what = (
            "could not reach the Hugging Face Hub (no internet connection, or offline mode is on: "
            "HF_DATASETS_OFFLINE / HF_HUB_OFFLINE) and the dataset is not in the local cache"
        )
    elif "notfound" in kind.lower() or isinstance(exc, FileNotFoundError) or any(
        word in low for word in ("doesn't exist", "does not exist", "not found", "couldn't find")
    ):
        what = (
            "dataset not found on the Hugging Face Hub; check the name (for example 'imdb' or "
            "'stanfordnlp/sst2'); private or gated datasets need you to log in"
        )
    elif "config name is missing" in low or "builderconfig" in low:
        what = "this dataset has several configurations: choose one (config=...)"
    else:
        what = "could not load it"
    return f"{display}: {what}. Details: {kind}: {details}" if details else f"{display}: {what} ({kind})"


def _is_class_label(feature: Any) -> bool:
    names = getattr(feature, "names", None)
    return (
        type(feature).__name__ == "ClassLabel"
        and isinstance(names, (list, tuple))
        and all(isinstance(n, str) for n in names)
    )


def _take_rows(dataset: Any, max_rows: int, seed: int) -> tuple[list[dict], int]:
    """The rows of a Hub split (a random max_rows of them when larger), and its size."""
    n = len(dataset)
    if n > max_rows:
        dataset = dataset.shuffle(seed=seed).select(range(max_rows))
    return [dict(row) for row in dataset], n


def load_hub_dataset(
    name: str,
    config: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    split_train: str = "train",
    split_test: str | Sequence[str] = ("test", "validation"),
    max_rows: int = 20_000,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> TextTask:
    """Load a text-classification dataset from the Hugging Face Hub (needs ``datasets``).

    Uses ``split_train`` for training and the first of ``split_test`` that
    exists and has labels for testing (a test split whose labels are all -1,
    as in GLUE, is passed over); with none, the training rows are split at
    random (``test_fraction``, ``seed``). At most ``max_rows`` rows are taken
    from each split (a random sample with ``seed`` when larger). Columns are
    detected as in :func:`detect_columns`; a single ``ClassLabel`` column is
    taken as the label, and its names become the label names. Every problem
    raises :class:`DataFileError`; see :func:`load_hub_dataset_with_report`
    for the rows that were skipped.
    """
    task, _ = load_hub_dataset_with_report(
        name, config, text_column, label_column, split_train, split_test, max_rows,
        test_fraction=test_fraction, seed=seed,
    )
    return task


def load_hub_dataset_with_report(
    name: str,
    config: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    split_train: str = "train",
    split_test: str | Sequence[str] = ("test", "validation"),
    max_rows: int = 20_000,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[TextTask, list[str]]:
    """Like :func:`load_hub_dataset`, and also return the warnings (skipped rows, notes)."""
    _check_fraction(test_fraction)
    if not isinstance(name, str) or not name.strip():
        raise DataFileError("Hub dataset: give a dataset name, for example 'imdb' or 'stanfordnlp/sst2'")
    name = name.strip()
    display = f"Hub dataset '{name}'" + (f" (config '{config}')" if config else "")
    try:
        import datasets  # optional dependency
    except ImportError:
        raise DataFileError(
            f"{display}: loading datasets from the Hugging Face Hub needs the optional `datasets` "
            "package; install it with `pip install datasets`"
        ) from None
    try:
        loaded = datasets.load_dataset(name, config)
    except Exception as exc:  # noqa: BLE001 - any failure is shown to the person
        raise DataFileError(_hub_error_message(display, exc)) from exc
    splits = dict(loaded) if hasattr(loaded, "keys") else {"train": loaded}
    if split_train not in splits:
        raise DataFileError(
            f"{display}: has no split {split_train!r}; splits found: {_quoted(list(splits)) or 'none'}"
        )
    train_ds = splits[split_train]
    columns = list(getattr(train_ds, "column_names", None) or [])
    features = getattr(train_ds, "features", None) or {}
    train_rows, train_size = _take_rows(train_ds, max_rows, seed)
    if not columns:
        columns = _union_keys(train_rows)
    if label_column is None and _find(columns, LABEL_COLUMN_NAMES, exclude=set()) is None:
        class_label_columns = [c for c in columns if _is_class_label(features.get(c))]
        if len(class_label_columns) == 1:
            label_column = class_label_columns[0]
    choice = detect_columns(
        train_rows, text_column, label_column, columns=columns, source=display,
    )
    feature = features.get(choice.label) if hasattr(features, "get") else None
    class_names = list(feature.names) if _is_class_label(feature) else None

    notes: list[str] = []
    if train_size > max_rows:
        notes.append(f"split {split_train!r} has {train_size:,} rows; used a random {max_rows:,} (seed {seed})")
    test_name, test_rows = None, []
    for candidate in [split_test] if isinstance(split_test, str) else list(split_test):
        if candidate not in splits or candidate == split_train:
            continue
        rows, size = _take_rows(splits[candidate], max_rows, seed)
        if all(_label_key(r.get(choice.label), class_names)[0] is None for r in rows):
            notes.append(f"split {candidate!r} has no labels, so it was not used")
            continue
        if size > max_rows:
            notes.append(f"split {candidate!r} has {size:,} rows; used a random {max_rows:,} (seed {seed})")
        test_name, test_rows = candidate, rows
        break

    entries: list[_Entry] = []
    for split, split_name, rows in (("train", split_train, train_rows), ("test", test_name, test_rows)):
        for i, row in enumerate(rows, 1):
            entries.append(_Entry(
                pos=len(entries) + 1, where=f"{split_name} row {i}", data=row,
                split=split if test_name is not None else None,
            ))
    source = f"Hugging Face dataset `{_code(name)}`" + (f", config `{_code(config)}`" if config else "")
    split_source = f"the dataset's `{_code(split_train)}` and `{_code(test_name)}` splits" if test_name else None
    short_name = name.rsplit("/", 1)[-1] + (f"-{config}" if config else "")
    return _assemble(
        entries, columns, name=short_name, display=display, source=source,
        text_column=choice.text, label_column=choice.label, split_column=None,
        test_fraction=test_fraction, seed=seed, class_names=class_names,
        split_source=split_source, notes=notes,
    )
