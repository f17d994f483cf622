"""Reading a person's data into rows: CSV / TSV / JSON Lines text, or in-memory records.

Each data row becomes an :class:`Entry` that knows where it is (``"line 7"``,
``"record 3"``) and either its fields or what is wrong with it; nothing is
dropped here. Whole-file problems (not a text file, not UTF-8, too large,
too many rows, no header, ...) raise :class:`DataFileError`. Standard library
only.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgoft_core.explore.data.errors import MAX_BAD_FRACTION, DataFileError

__all__ = [
    "FORMAT_NAMES",
    "SUPPORTED_SUFFIXES",
    "Entry",
    "csv_hint",
    "entries_from_records",
    "json_type",
    "parse_csv",
    "parse_json_lines",
    "read_text_file",
    "union_keys",
]

# file suffix -> format
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
}
FORMAT_NAMES = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSON Lines"}


@dataclass
class Entry:
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


def union_keys(rows: Iterable[Mapping]) -> list[str]:
    """The keys of ``rows``, in order of first appearance."""
    seen: dict[Any, None] = {}
    for row in rows:
        if isinstance(row, Mapping):
            for key in row:
                seen.setdefault(key, None)
    return list(seen)


def json_type(value: Any) -> str:
    """What a JSON value is, in words (``"a number"``, ``"a list"``, ...)."""
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


# ---------------------------------------------------------------------------
# a file -> its text
# ---------------------------------------------------------------------------


def read_text_file(path: Path, max_bytes: int) -> tuple[str, str, str]:
    """``(display name, format, text)`` of a data file; :class:`DataFileError` when unusable."""
    display = path.name or str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataFileError(f"{display}: file not found") from None
    except OSError as exc:
        raise DataFileError(f"{display}: cannot read the file ({exc.strerror or exc})") from None
    if path.is_dir():
        raise DataFileError(f"{display}: is a folder, not a file")
    suffix = path.suffix.lower()
    fmt = SUPPORTED_SUFFIXES.get(suffix)
    if fmt is None:
        raise DataFileError(_unsupported_message(display, suffix))
    if st.st_size > max_bytes:
        raise DataFileError(
            f"{display}: the file is too large ({_size(st.st_size)}; the limit is {_size(max_bytes)})"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFileError(f"{display}: cannot read the file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:  # it grew since stat()
        raise DataFileError(
            f"{display}: the file is too large ({_size(len(data))}; the limit is {_size(max_bytes)})"
        )
    text = _decode(display, data)
    if not text.strip():
        raise DataFileError(f"{display}: the file is empty")
    return display, fmt, text


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


# ---------------------------------------------------------------------------
# text -> rows
# ---------------------------------------------------------------------------


def parse_csv(display: str, text: str, delimiter: str, max_rows: int) -> tuple[list[Entry], list[str]]:
    """The rows of CSV (``delimiter`` ``","``) or TSV (``"\\t"``) text, and the header's column names."""
    kind = "TSV" if delimiter == "\t" else "CSV"
    sep = "tabs" if delimiter == "\t" else "commas"
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, len(text) + 1))  # long documents are fine
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header: list[str] | None = None
        entries: list[Entry] = []
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
            entry = Entry(pos=start, where=where)
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


def csv_hint(fmt: str, columns: list[str]) -> str:
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


def parse_json_lines(display: str, text: str, max_rows: int) -> tuple[list[Entry], list[str]]:
    """The rows of JSON Lines text (or of a JSON list of objects), and their keys."""
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
            entry = Entry(pos=i, where=f"record {i}")
            if isinstance(item, dict):
                entry.data = item
            else:
                entry.problem = f"expected a JSON object, found {json_type(item)}"
            entries.append(entry)
        return entries, union_keys(e.data for e in entries if e.data is not None)

    entries = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        if len(entries) >= max_rows:
            raise _too_many_rows(display, max_rows, where)
        entry = Entry(pos=lineno, where=where)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            entry.problem = f"not valid JSON ({exc.msg} at column {exc.colno})"
        else:
            if isinstance(obj, dict):
                entry.data = obj
            else:
                entry.problem = (
                    f'expected a JSON object like {{"text": "...", "label": "..."}}, found {json_type(obj)}'
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
    return entries, union_keys(e.data for e in entries if e.data is not None)


def entries_from_records(records: Iterable[Any]) -> tuple[list[Entry], list[str]]:
    """The rows of in-memory records (mappings), ``"record N"`` (1-based), and their keys."""
    entries = []
    for i, record in enumerate(records, 1):
        entry = Entry(pos=i, where=f"record {i}")
        if isinstance(record, Mapping):
            entry.data = dict(record)
        else:
            entry.problem = f"expected a mapping of column to value, found {json_type(record)}"
        entries.append(entry)
    return entries, union_keys(e.data for e in entries if e.data is not None)
