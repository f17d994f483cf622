"""A text-classification dataset from the Hugging Face Hub -> a :class:`TextTask` (and warnings).

The optional ``datasets`` package is imported only when a dataset is loaded;
every failure (no package, offline, not found, ...) becomes a
:class:`DataFileError` that says what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qgoft_core.explore.data.card import Origin
from qgoft_core.explore.data.columns import LABEL_COLUMN_NAMES, detect_columns, find_column
from qgoft_core.explore.data.errors import DataFileError, quoted
from qgoft_core.explore.data.labels import label_key
from qgoft_core.explore.data.parse import Entry, union_keys
from qgoft_core.explore.data.splits import assemble, check_fraction
from qgoft_core.explore.data.tasks import TextTask

__all__ = ["load_hub_dataset_with_report"]


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
    """Load a text-classification dataset from the Hugging Face Hub (needs ``datasets``), and the warnings.

    Uses ``split_train`` for training and the first of ``split_test`` that
    exists and has labels for testing (a test split whose labels are all -1,
    as in GLUE, is passed over); with none, the training rows are split at
    random (``test_fraction``, ``seed``). At most ``max_rows`` rows are taken
    from each split (a random sample with ``seed`` when larger). Columns are
    detected as in :func:`detect_columns`; a single ``ClassLabel`` column is
    taken as the label, and its names become the label names. Every problem
    raises :class:`DataFileError`; the warnings are the rows that were
    skipped and notes (splits sampled or passed over).
    """
    check_fraction(test_fraction)
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
            f"{display}: has no split {split_train!r}; splits found: {quoted(list(splits)) or 'none'}"
        )
    train_ds = splits[split_train]
    columns = list(getattr(train_ds, "column_names", None) or [])
    features = getattr(train_ds, "features", None) or {}
    train_rows, train_size = _take_rows(train_ds, max_rows, seed)
    if not columns:
        columns = union_keys(train_rows)
    if label_column is None and find_column(columns, LABEL_COLUMN_NAMES, exclude=set()) is None:
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
        if all(label_key(r.get(choice.label), class_names)[0] is None for r in rows):
            notes.append(f"split {candidate!r} has no labels, so it was not used")
            continue
        if size > max_rows:
            notes.append(f"split {candidate!r} has {size:,} rows; used a random {max_rows:,} (seed {seed})")
        test_name, test_rows = candidate, rows
        break

    entries: list[Entry] = []
    for split, split_name, rows in (("train", split_train, train_rows), ("test", test_name, test_rows)):
        for i, row in enumerate(rows, 1):
            entries.append(Entry(
                pos=len(entries) + 1, where=f"{split_name} row {i}", data=row,
                split=split if test_name is not None else None,
            ))
    origin = Origin("hub", name=name, config=config,
                    splits=(split_train, test_name) if test_name else None)
    short_name = name.rsplit("/", 1)[-1] + (f"-{config}" if config else "")
    return assemble(
        entries, columns, name=short_name, display=display, origin=origin,
        text_column=choice.text, label_column=choice.label, split_column=None,
        test_fraction=test_fraction, seed=seed, class_names=class_names, notes=notes,
    )
