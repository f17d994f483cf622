"""Rows -> a :class:`TextTask`: check the rows, map the labels, split train / test.

The split comes from the data when it has one (a ``split`` column, or a Hub
dataset's own splits); otherwise the rows are split at random, stratified by
label. Rows with problems are skipped when they are few (see ``errors.py``)
and reported as warnings. Standard library only.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from qgoft_core.explore.data.card import Origin, task_card
from qgoft_core.explore.data.columns import detect_columns
from qgoft_core.explore.data.errors import MAX_BAD_FRACTION, DataFileError, problem_lines, quoted, too_many_bad
from qgoft_core.explore.data.labels import label_key, map_labels
from qgoft_core.explore.data.parse import Entry, entries_from_records, json_type
from qgoft_core.explore.data.tasks import TextTask

__all__ = ["MIN_ROWS", "assemble", "check_fraction", "task_from_records"]

MIN_ROWS = 10  # usable rows needed

_SPLIT_VALUES = {
    "train": "train", "training": "train",
    "test": "test", "testing": "test", "validation": "test", "valid": "test", "val": "test",
    "dev": "test", "eval": "test", "evaluation": "test",
}


def check_fraction(test_fraction: float) -> None:
    if not (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must be between 0 and 1 (both excluded), got {test_fraction!r}")


def _split_value(raw: Any) -> str | None:
    if raw is None:
        return None
    return _SPLIT_VALUES.get(str(raw).strip().casefold())


def assemble(
    entries: list[Entry],
    columns: list[Any],
    *,
    name: str,
    display: str,
    origin: Origin,
    text_column: str | None,
    label_column: str | None,
    split_column: str | None,
    test_fraction: float,
    seed: int,
    hint: str = "",
    header_hint: bool = False,
    class_names: Sequence[str] | None = None,
    notes: Sequence[str] = (),
) -> tuple[TextTask, list[str]]:
    """Validate parsed rows, map the labels, split, and build the task (and its warnings).

    ``display`` names the data in messages; rows whose ``split`` is set came
    split (``origin.splits``) and keep it.
    """
    check_fraction(test_fraction)
    notes = list(notes)
    total = len(entries)
    if total == 0:
        raise DataFileError(f"{display}: no data rows")
    bad = [e for e in entries if e.problem is not None]
    if len(bad) > MAX_BAD_FRACTION * total:  # the file itself is broken: say so first
        raise too_many_bad(display, [e.note() for e in bad], total, hint)

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
                f"({quoted(unknown[:5])}), so it was not used: the rows were split at random"
            )
            split_col = None

    for e in good:
        row = e.data
        text = row.get(choice.text)
        if text is None or (isinstance(text, str) and not text.strip()):
            e.problem = f"empty text (column {choice.text!r})"
            continue
        if not isinstance(text, str):
            e.problem = f"the text (column {choice.text!r}) is {json_type(text)}, not a string"
            continue
        key, problem = label_key(row.get(choice.label), class_names)
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
        raise too_many_bad(display, [e.note() for e in bad], total, hint)
    if len(usable) < MIN_ROWS:
        message = f"{display}: too few rows: only {len(usable)} usable, at least {MIN_ROWS} are needed"
        if bad:
            message += f"; {len(bad)} rows have problems:\n" + problem_lines([e.note() for e in bad])
        raise DataFileError(message, problems=[e.note() for e in bad])

    labels, label_names = map_labels([e.key for e in usable], class_names)
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
                    f"the labels {quoted(same)} differ only in upper/lower case; "
                    "they are treated as different classes"
                )

    if presplit or split_col is not None:
        is_test = [e.split == "test" for e in usable]
        n_test = sum(is_test)
        where = f"column {split_col!r}" if split_col is not None else origin.splits_text()
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
            notes.append(f"the classes {quoted(missing)} have test rows but no training rows")
    else:
        single = [label_names[y] for y in sorted(counts) if counts[y] < 2]
        if single:
            message = (
                f"{display}: {len(single)} class{'es have' if len(single) > 1 else ' has'} only 1 example "
                f"({quoted(single[:10])}{', ...' if len(single) > 10 else ''}) in column {choice.label!r}; "
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

    train = [(e.text, y) for e, y, t in zip(usable, labels, is_test) if not t]
    test = [(e.text, y) for e, y, t in zip(usable, labels, is_test) if t]
    task = TextTask(
        name=name,
        label_names=label_names,
        train_texts=tuple(t for t, _ in train),
        train_labels=tuple(y for _, y in train),
        test_texts=tuple(t for t, _ in test),
        test_labels=tuple(y for _, y in test),
        card=task_card(
            name=name, origin=origin, text_column=choice.text, label_column=choice.label,
            split_column=split_col, presplit=presplit, test_fraction=test_fraction, seed=seed,
            label_names=label_names, train_labels=[y for _, y in train], test_labels=[y for _, y in test],
            skipped=len(bad),
        ),
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
    entries, columns = entries_from_records(records)
    return assemble(
        entries, columns, name=name, display=name, origin=Origin("records"),
        text_column=text_column, label_column=label_column, split_column=split_column,
        test_fraction=test_fraction, seed=seed, class_names=label_names,
    )
