"""What is wrong with a person's data, and how it is told: plain text, no markup.

:class:`DataFileError` is the one error every loader raises; its message names
the file (or dataset), the line number(s) and what is wrong, so an app or the
command line can show it as it is. Rows with problems are skipped only when
they are few (:data:`MAX_BAD_FRACTION`); otherwise the first
:data:`MAX_LISTED` problems are listed in the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_BAD_FRACTION", "MAX_LISTED", "DataFileError", "problem_lines", "quoted", "too_many_bad"]

MAX_BAD_FRACTION = 0.05  # rows with problems that may be skipped
MAX_LISTED = 10  # problems listed in an error message


class DataFileError(ValueError):
    """A user's data that cannot be used; the message says where and why.

    ``problems`` holds the row problems behind the error (``"line 7: empty
    text (column 'text')"``), when there are any.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


def quoted(names: Sequence[Any]) -> str:
    """``'a', 'b', 'c'`` (the first 30, then how many more)."""
    shown = ", ".join(repr(c) for c in names[:30])
    return shown + (f" and {len(names) - 30} more" if len(names) > 30 else "")


def problem_lines(notes: Sequence[str]) -> str:
    """The first :data:`MAX_LISTED` row problems, one ``- ...`` line each."""
    lines = [f"- {note}" for note in notes[:MAX_LISTED]]
    if len(notes) > MAX_LISTED:
        lines.append(f"- ... and {len(notes) - MAX_LISTED} more")
    return "\n".join(lines)


def too_many_bad(display: str, notes: Sequence[str], total: int, hint: str) -> DataFileError:
    """The error for data with more problem rows than may be skipped."""
    percent = 100.0 * len(notes) / total
    return DataFileError(
        f"{display}: {len(notes)} of {total} rows have problems ({percent:.0f}%; at most "
        f"{MAX_BAD_FRACTION:.0%} can be skipped), so the data was not loaded:{hint}\n"
        + problem_lines(notes),
        problems=list(notes),
    )
