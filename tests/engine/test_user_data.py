"""Tests for qgoft_core.explore.data.user_files: a person's own CSV / TSV / JSON Lines files and Hub datasets."""

from __future__ import annotations

import json
import sys
import types
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qgoft_core.explore.data.tasks import TextTask  # noqa: E402
from qgoft_core.explore.data.user_files import (  # noqa: E402
    ColumnChoice,
    DataFileError,
    detect_columns,
    load_hub_dataset,
    load_hub_dataset_with_report,
    load_text_file,
    load_text_file_with_report,
    task_from_records,
)

POS = ["I loved this film, truly", "great acting and a warm story", "a joy from start to end",
       "wonderful, I would watch it again", "the best meal in town", "fast delivery and it works",
       "charming and funny", "an app that just works", "beautiful photography", "kind staff, fresh food",
       "a clever plot", "worth every penny"]
NEG = ["a dull and slow film", "the battery died in a day", "cold soup and rude waiters",
       "it crashed twice an hour", "I want my money back", "a waste of two hours",
       "broken on arrival", "stale bread, sticky table", "the plot made no sense",
       "loud, cramped and expensive", "poor sound and a weak ending", "never again"]


def rows(n_per_class: int = 12, labels=("negative", "positive")) -> list[tuple[str, object]]:
    """Alternating negative / positive rows with distinct texts."""
    out = []
    for i in range(n_per_class):
        out.append((NEG[i % len(NEG)] + f" #{i}", labels[0]))
        out.append((POS[i % len(POS)] + f" #{i}", labels[1]))
    return out


def write_csv(path: Path, header: str, lines: list[str], sep: str = ",") -> Path:
    path.write_text(sep.join(header.split(",")) + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def csv_lines(data, sep=","):
    return ['"' + t.replace('"', '""') + '"' + sep + str(y) for t, y in data]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def all_texts(task: TextTask) -> list[str]:
    return list(task.train_texts) + list(task.test_texts)


def label_counts(task: TextTask) -> Counter:
    return Counter(task.label_names[y] for y in task.train_labels + task.test_labels)


# --------------------------------------------------------------------------- good files


def test_csv_with_string_labels(tmp_path):
    path = write_csv(tmp_path / "reviews.csv", "text,label", csv_lines(rows()))
    task, warnings = load_text_file_with_report(path)
    assert isinstance(task, TextTask)
    assert warnings == []
    assert task.name == "reviews"
    assert task.label_names == ("negative", "positive")  # sorted names -> 0..k-1
    assert len(task.train_texts) + len(task.test_texts) == 24
    assert label_counts(task) == {"negative": 12, "positive": 12}
    # texts with commas came through whole, labels match the texts
    pairs = dict(zip(all_texts(task), task.train_labels + task.test_labels))
    assert pairs["I loved this film, truly #0"] == 1
    assert pairs["a dull and slow film #0"] == 0
    assert "reviews.csv" in task.card and "24 used" in task.card and "0 skipped" in task.card
    assert "text = `text`" in task.card and "label = `label`" in task.card
    assert "negative (" in task.card and "positive (" in task.card
    assert load_text_file(path) == task


def test_csv_with_int_labels_keeps_ids(tmp_path):
    data = [(t, {"negative": 0, "positive": 1}[y]) for t, y in rows()]
    path = write_csv(tmp_path / "ints.csv", "text,label", csv_lines(data))
    task = load_text_file(path)
    assert task.label_names == ("0", "1")
    pairs = dict(zip(all_texts(task), task.train_labels + task.test_labels))
    assert pairs["great acting and a warm story #1"] == 1
    assert pairs["cold soup and rude waiters #2"] == 0


def test_non_contiguous_int_labels_are_remapped(tmp_path):
    data = [(t, {"negative": 1, "positive": 5}[y]) for t, y in rows()]
    task = load_text_file(write_csv(tmp_path / "stars.csv", "text,label", csv_lines(data)))
    assert task.label_names == ("1", "5")
    assert set(task.train_labels) == {0, 1}


def test_jsonl_with_string_and_int_labels(tmp_path):
    recs = [{"text": t, "label": y} for t, y in rows()]
    task = load_text_file(write_jsonl(tmp_path / "s.jsonl", recs))
    assert task.label_names == ("negative", "positive") and task.name == "s"
    recs = [{"text": t, "label": 0 if y == "negative" else 1} for t, y in rows()]
    task = load_text_file(write_jsonl(tmp_path / "i.jsonl", recs))
    assert task.label_names == ("0", "1")
    assert dict(zip(all_texts(task), task.train_labels + task.test_labels))["never again #11"] == 0


def test_json_suffix_and_bool_labels(tmp_path):
    recs = [{"sentence": t, "target": y == "positive"} for t, y in rows()]
    task = load_text_file(write_jsonl(tmp_path / "b.json", recs))
    assert task.label_names == ("false", "true")
    assert dict(zip(all_texts(task), task.train_labels + task.test_labels))["charming and funny #6"] == 1


def test_json_list_of_objects(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"text": t, "label": y} for t, y in rows()], indent=2), encoding="utf-8")
    assert load_text_file(path).label_names == ("negative", "positive")


def test_tsv(tmp_path):
    data = [(t, y) for t, y in rows()]
    lines = [f"{t}\t{y}" for t, y in data]  # commas in texts need no quotes in TSV
    path = write_csv(tmp_path / "data.tsv", "text,label", lines, sep="\t")
    task = load_text_file(path)
    assert "I loved this film, truly #0" in all_texts(task)
    assert task.label_names == ("negative", "positive")


def test_three_classes_and_bom_and_crlf(tmp_path):
    data = [(f"{name} text number {i}", name) for i in range(6) for name in ("sport", "tech", "world")]
    body = "text,label\r\n" + "\r\n".join(f"{t},{y}" for t, y in data) + "\r\n"
    path = tmp_path / "topics.csv"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    task = load_text_file(path)
    assert task.label_names == ("sport", "tech", "world")
    assert all(not t.endswith("\r") for t in all_texts(task))
    assert Counter(task.test_labels) == {0: 1, 1: 1, 2: 1}


# --------------------------------------------------------------------------- columns


def test_column_detection_by_name_case_insensitive(tmp_path):
    data = rows()
    lines = [f'{i},"{t}",{y},x' for i, (t, y) in enumerate(data)]
    path = write_csv(tmp_path / "c.csv", "id,Review,Sentiment,extra", lines)
    task = load_text_file(path)
    assert "text = `Review`" in task.card and "label = `Sentiment`" in task.card
    assert task.label_names == ("negative", "positive")


def test_column_detection_longest_string_column(tmp_path):
    data = rows()
    lines = [f'{i},short,"{t}",{y}' for i, (t, y) in enumerate(data)]
    path = write_csv(tmp_path / "c.csv", "id,tag,body,label", lines)
    task = load_text_file(path)
    assert "text = `body`" in task.card
    assert "a dull and slow film #0" in all_texts(task)


def test_label_column_falls_back_to_the_only_other_column(tmp_path):
    lines = [f'"{t}",{1 if y == "positive" else 4}' for t, y in rows()]
    task = load_text_file(write_csv(tmp_path / "c.csv", "review,stars", lines))
    assert "label = `stars`" in task.card and task.label_names == ("1", "4")


def test_explicit_columns(tmp_path):
    data = rows()
    lines = [f'"{t}",{y},"other text {i}",wrong{i % 2}' for i, (t, y) in enumerate(data)]
    path = write_csv(tmp_path / "c.csv", "body,mood,text,label", lines)
    task = load_text_file(path, text_column="body", label_column="mood")
    assert task.label_names == ("negative", "positive")
    assert "text = `body`" in task.card and "label = `mood`" in task.card
    # another case is accepted
    assert load_text_file(path, text_column="BODY", label_column="Mood") == task


def test_unknown_column_lists_columns_found(tmp_path):
    path = write_csv(tmp_path / "c.csv", "text,label", csv_lines(rows()))
    with pytest.raises(DataFileError) as err:
        load_text_file(path, text_column="txt")
    msg = str(err.value)
    assert "c.csv" in msg and "'txt'" in msg and "text column" in msg
    assert "columns found: 'text', 'label'" in msg
    with pytest.raises(DataFileError, match="no column 'lbl'.*label column"):
        load_text_file(path, label_column="lbl")


def test_no_label_column(tmp_path):
    lines = [f'"{t}",{i},{i * 2}' for i, (t, _) in enumerate(rows())]
    path = write_csv(tmp_path / "c.csv", "text,id,score", lines)
    with pytest.raises(DataFileError) as err:
        load_text_file(path)
    msg = str(err.value)
    assert "c.csv" in msg and "no label column" in msg and "'text', 'id', 'score'" in msg


def test_no_text_column(tmp_path):
    lines = [f"{i},{i % 2}" for i in range(30)]
    with pytest.raises(DataFileError, match="no text column.*columns found: 'id', 'label'.*header"):
        load_text_file(write_csv(tmp_path / "n.csv", "id,label", lines))


def test_semicolon_csv_gets_a_hint(tmp_path):
    lines = [f"{t.replace(',', '')};{y}" for t, y in rows()]
    path = write_csv(tmp_path / "semi.csv", "text;label", lines)
    with pytest.raises(DataFileError, match="semicolons"):
        load_text_file(path)


def test_detect_columns_in_memory():
    recs = [{"idx": i, "Sentence": t, "labels": y} for i, (t, y) in enumerate(rows())]
    assert detect_columns(recs) == ColumnChoice(text="Sentence", label="labels", split=None)
    recs = [{"title": "x", "body": t, "y": y, "split": "train"} for t, y in rows()]
    assert detect_columns(recs) == ColumnChoice(text="body", label="y", split="split")
    assert detect_columns(recs, text_column="title", label_column="y").text == "title"
    with pytest.raises(DataFileError, match="mem: there is no column 'nope'.*'title', 'body', 'y', 'split'"):
        detect_columns(recs, label_column="nope", source="mem")
    with pytest.raises(DataFileError, match="both the text and the label"):
        detect_columns(recs, text_column="body", label_column="body")
    # numbers are not text
    with pytest.raises(DataFileError, match="no text column"):
        detect_columns([{"a": "12", "b": 3.5, "label": 1}])


def test_task_from_records():
    recs = [{"text": t, "label": y} for t, y in rows()] + [{"text": "", "label": "positive"}]
    task, warnings = task_from_records(recs, name="mem")
    assert task.name == "mem" and task.label_names == ("negative", "positive")
    assert warnings == ["record 25: empty text (column 'text')"]
    task, _ = task_from_records(
        [{"text": t, "label": 0 if y == "negative" else 1} for t, y in rows()] + [{"text": "z", "label": -1}],
        label_names=["neg", "pos", "neutral"],
    )
    assert task.label_names == ("neg", "pos", "neutral")


# --------------------------------------------------------------------------- splits


def test_split_column(tmp_path):
    data = rows()
    lines = [f'"{t}",{y},{"test" if i % 4 == 0 else ("validation" if i % 4 == 1 else "train")}'
             for i, (t, y) in enumerate(data)]
    task = load_text_file(write_csv(tmp_path / "s.csv", "text,label,split", lines))
    assert len(task.test_texts) == 12 and len(task.train_texts) == 12
    assert data[0][0] in task.test_texts and data[1][0] in task.test_texts and data[2][0] in task.train_texts
    assert "from the column `split`" in task.card


def test_explicit_split_column_with_bad_value_is_a_bad_row(tmp_path):
    data = rows(n_per_class=20)
    lines = [f'"{t}",{y},{"test" if i % 5 == 0 else "train"}' for i, (t, y) in enumerate(data)]
    lines[7] = lines[7].rsplit(",", 1)[0] + ",holdout"
    path = write_csv(tmp_path / "s.csv", "text,label,part", lines)
    task, warnings = load_text_file_with_report(path, split_column="part")
    assert warnings == ["line 9: split 'holdout' is not train, test or validation (column 'part')"]
    assert len(all_texts(task)) == 39


def test_auto_split_column_with_other_values_is_not_used(tmp_path):
    lines = [f'"{t}",{y},fold{i % 3}' for i, (t, y) in enumerate(rows())]
    task, warnings = load_text_file_with_report(write_csv(tmp_path / "s.csv", "text,label,split", lines))
    assert len(warnings) == 1 and "'split'" in warnings[0] and "not used" in warnings[0]
    assert "random" in task.card


def test_split_column_without_test_rows(tmp_path):
    lines = [f'"{t}",{y},train' for t, y in rows()]
    with pytest.raises(DataFileError, match="s.csv: no test rows"):
        load_text_file(write_csv(tmp_path / "s.csv", "text,label,split", lines))


def test_stratified_split_is_deterministic(tmp_path):
    data = rows(n_per_class=20) + [(f"third kind {i}", "neutral") for i in range(3)]
    path = write_csv(tmp_path / "d.csv", "text,label", csv_lines(data))
    a = load_text_file(path, seed=3)
    b = load_text_file(path, seed=3)
    c = load_text_file(path, seed=4)
    assert a == b
    assert set(a.test_texts) != set(c.test_texts)
    assert Counter(a.test_labels) == {0: 4, 1: 1, 2: 4}  # 20% of each class, at least one
    assert sorted(all_texts(a)) == sorted(t for t, _ in data)
    assert not set(a.train_texts) & set(a.test_texts)
    d = load_text_file(path, seed=3, test_fraction=0.5)
    assert len(d.test_texts) == 10 + 2 + 10
    with pytest.raises(ValueError, match="test_fraction"):
        load_text_file(path, test_fraction=1.0)


def test_class_with_one_example(tmp_path):
    data = rows() + [("just one of these", "neutral")]
    with pytest.raises(DataFileError) as err:
        load_text_file(write_csv(tmp_path / "d.csv", "text,label", csv_lines(data)))
    msg = str(err.value)
    assert "d.csv" in msg and "'neutral'" in msg and "only 1 example" in msg


# --------------------------------------------------------------------------- bad rows


def test_few_bad_rows_are_skipped_and_reported(tmp_path):
    lines = csv_lines(rows(n_per_class=40))  # 80 rows: 4 may be bad
    lines[4] = '"",positive'  # line 6
    lines[10] = '"a text without label",'  # line 12
    lines[20] = '"too", "many", fields'  # line 22
    task, warnings = load_text_file_with_report(write_csv(tmp_path / "b.csv", "text,label", lines))
    assert warnings == [
        "line 6: empty text (column 'text')",
        "line 12: missing label (column 'label')",
        "line 22: has 3 fields but the header has 2 (a text that contains commas must be in double quotes)",
    ]
    assert len(all_texts(task)) == 77
    assert "3 skipped" in task.card
    assert load_text_file(tmp_path / "b.csv") == task


def test_too_many_bad_rows_lists_line_numbers(tmp_path):
    lines = csv_lines(rows())  # 24 rows
    for i in range(0, 24, 2):  # 12 rows with an empty text, on lines 2, 4, ...
        lines[i] = ",negative"
    with pytest.raises(DataFileError) as err:
        load_text_file(write_csv(tmp_path / "b.csv", "text,label", lines))
    msg = str(err.value)
    assert "b.csv" in msg and "12 of 24 rows have problems" in msg
    for line in (2, 4, 6, 20):
        assert f"line {line}: empty text" in msg
    assert "line 22" not in msg and "and 2 more" in msg  # the first 10 are listed
    assert len(err.value.problems) == 12


def test_malformed_json_line_number(tmp_path):
    path = tmp_path / "m.jsonl"
    good = [json.dumps({"text": t, "label": y}) for t, y in rows()]
    good.insert(3, '{"text": "broken", "label": ')  # line 4
    good.insert(8, '["a", "list"]')  # line 9
    path.write_text("\n".join(good) + "\n", encoding="utf-8")
    with pytest.raises(DataFileError) as err:
        load_text_file(path)
    msg = str(err.value)
    assert "m.jsonl" in msg and "line 4: not valid JSON" in msg
    assert "line 9: expected a JSON object" in msg and "found a list" in msg


def test_one_malformed_json_line_among_many_is_skipped(tmp_path):
    lines = [json.dumps({"text": t, "label": y}) for t, y in rows(n_per_class=15)]
    lines.insert(11, "{not json}")  # line 12
    lines.insert(5, "")  # a blank line is not a row
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    task, warnings = load_text_file_with_report(path)
    assert len(warnings) == 1 and warnings[0].startswith("line 13: not valid JSON")
    assert len(all_texts(task)) == 30


def test_pretty_printed_json_object(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text(json.dumps({"data": [{"text": "a", "label": 1}]}, indent=2), encoding="utf-8")
    with pytest.raises(DataFileError, match="obj.json: holds one JSON object spread over several lines"):
        load_text_file(path)


def test_csv_wrong_field_count(tmp_path):
    lines = csv_lines(rows())
    lines[2] = "an unquoted text, with a comma,positive"  # line 4
    lines[5] = "only a text"  # line 7
    with pytest.raises(DataFileError) as err:
        load_text_file(write_csv(tmp_path / "f.csv", "text,label", lines))
    msg = str(err.value)
    assert "f.csv" in msg
    assert "line 4: has 3 fields but the header has 2" in msg and "double quotes" in msg
    assert "line 7: has 1 fields but the header has 2" in msg


def test_multiline_quoted_text_is_one_row(tmp_path):
    lines = csv_lines(rows())
    lines[0] = '"a text\nover two lines",negative'
    task = load_text_file(write_csv(tmp_path / "q.csv", "text,label", lines))
    assert "a text\nover two lines" in all_texts(task)


# --------------------------------------------------------------------------- fatal file problems


def test_missing_file(tmp_path):
    with pytest.raises(DataFileError, match="nothere.csv: file not found"):
        load_text_file(tmp_path / "nothere.csv")


def test_empty_file(tmp_path):
    for content in ("", "  \n\n", "\ufeff"):
        path = tmp_path / "empty.csv"
        path.write_text(content, encoding="utf-8")
        with pytest.raises(DataFileError, match="empty.csv: the file is empty"):
            load_text_file(path)
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="empty.jsonl: the file is empty"):
        load_text_file(path)


def test_header_only(tmp_path):
    with pytest.raises(DataFileError, match="h.csv: the file has a header line but no data rows"):
        load_text_file(write_csv(tmp_path / "h.csv", "text,label", []))


def test_binary_junk(tmp_path):
    path = tmp_path / "junk.csv"
    path.write_bytes(b"text,label\nabc\x00\x01\x02\xff\xfe,1\n" + bytes(range(256)))
    with pytest.raises(DataFileError) as err:
        load_text_file(path)
    msg = str(err.value)
    assert "junk.csv" in msg and "not a text file" in msg and "line 2" in msg


def test_excel_workbook_renamed(tmp_path):
    path = tmp_path / "sheet.csv"
    path.write_bytes(b"PK\x03\x04" + b"\x14\x00" * 20)
    with pytest.raises(DataFileError, match="sheet.csv: not a text file.*zip"):
        load_text_file(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    body = "text,label\n" + "\n".join(csv_lines(rows())) + "\n\"caf\u00e9 au lait\",positive\n"
    path.write_bytes(body.encode("latin-1"))
    with pytest.raises(DataFileError) as err:
        load_text_file(path)
    msg = str(err.value)
    assert "latin.csv" in msg and "not a text file" in msg and "UTF-8" in msg
    assert "line 26" in msg and "0xe9" in msg
    path.write_bytes(body.encode("utf-16"))
    with pytest.raises(DataFileError, match="latin.csv: not a text file in UTF-8.*UTF-16"):
        load_text_file(path)


def test_single_class(tmp_path):
    data = [(t, "positive") for t, _ in rows()]
    with pytest.raises(DataFileError) as err:
        load_text_file(write_csv(tmp_path / "one.csv", "text,label", csv_lines(data)))
    msg = str(err.value)
    assert "one.csv" in msg and "only one class" in msg and "'positive'" in msg and "at least 2" in msg


def test_too_few_rows(tmp_path):
    with pytest.raises(DataFileError) as err:
        load_text_file(write_csv(tmp_path / "few.csv", "text,label", csv_lines(rows(n_per_class=4))))
    msg = str(err.value)
    assert "few.csv" in msg and "too few rows" in msg and "only 8 usable" in msg and "at least 10" in msg
    lines = csv_lines(rows(n_per_class=5))
    lines[0] = ",negative"  # 1 bad row of 10 is more than 5%: listed
    with pytest.raises(DataFileError, match=r"1 of 10 rows have problems.*\n- line 2: empty text"):
        load_text_file(write_csv(tmp_path / "few.csv", "text,label", lines))
    with pytest.raises(DataFileError, match="mem: too few rows: only 9 usable"):
        task_from_records([{"text": t, "label": y} for t, y in rows(n_per_class=5)][1:], name="mem")


@pytest.mark.parametrize("name", ["data.xlsx", "data.txt", "data.parquet", "data"])
def test_wrong_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text("text,label\nhello,1\n", encoding="utf-8")
    with pytest.raises(DataFileError) as err:
        load_text_file(path)
    msg = str(err.value)
    assert name in msg and ".csv" in msg and ".jsonl" in msg
    assert ("unsupported file type" in msg) or ("no extension" in msg)


def test_file_too_large(tmp_path):
    path = write_csv(tmp_path / "big.csv", "text,label", csv_lines(rows()))
    with pytest.raises(DataFileError) as err:
        load_text_file(path, max_bytes=100)
    msg = str(err.value)
    assert "big.csv" in msg and "too large" in msg and "100 bytes" in msg


def test_too_many_rows(tmp_path):
    path = write_csv(tmp_path / "long.csv", "text,label", csv_lines(rows()))
    with pytest.raises(DataFileError, match="long.csv: too many rows: more than 20"):
        load_text_file(path, max_rows=20)
    path = write_jsonl(tmp_path / "long.jsonl", [{"text": t, "label": y} for t, y in rows()])
    with pytest.raises(DataFileError, match="long.jsonl: too many rows"):
        load_text_file(path, max_rows=20)
    assert len(all_texts(load_text_file(path, max_rows=24))) == 24


def test_labels_differing_in_case_are_noted(tmp_path):
    data = rows(n_per_class=20)
    data += [("another good one", "Positive"), ("and one more", "Positive")]
    task, warnings = load_text_file_with_report(write_csv(tmp_path / "c.csv", "text,label", csv_lines(data)))
    assert task.label_names == ("Positive", "negative", "positive")
    assert any("differ only in upper/lower case" in w for w in warnings)


def test_card_escapes_markdown(tmp_path):
    data = rows(labels=("<b>bad</b>", "*good*"))
    task = load_text_file(write_csv(tmp_path / "m.csv", "text,label", csv_lines(data)))
    assert "<b>" not in task.card and "&lt;b&gt;" in task.card and "\\*good\\*" in task.card


# --------------------------------------------------------------------------- Hub


def test_hub_without_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(DataFileError) as err:
        load_hub_dataset("imdb")
    msg = str(err.value)
    assert "'imdb'" in msg and "pip install datasets" in msg


def _fake_datasets(monkeypatch, load):
    module = types.ModuleType("datasets")
    module.load_dataset = load
    monkeypatch.setitem(sys.modules, "datasets", module)


def test_hub_offline(monkeypatch):
    def load(name, config=None):
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (LocalEntryNotFoundError)")
    _fake_datasets(monkeypatch, load)
    with pytest.raises(DataFileError) as err:
        load_hub_dataset("imdb")
    msg = str(err.value)
    assert "'imdb'" in msg and "could not reach the Hugging Face Hub" in msg and "offline" in msg


def test_hub_not_found(monkeypatch):
    class DatasetNotFoundError(FileNotFoundError):
        pass

    def load(name, config=None):
        raise DatasetNotFoundError(f"Dataset '{name}' doesn't exist on the Hub or cannot be accessed.")
    _fake_datasets(monkeypatch, load)
    with pytest.raises(DataFileError, match="'no/such': dataset not found on the Hugging Face Hub"):
        load_hub_dataset("no/such")


class _ClassLabel:
    def __init__(self, names):
        self.names = list(names)


_ClassLabel.__name__ = "ClassLabel"


class _FakeSplit:
    def __init__(self, records, features=None):
        self.records = list(records)
        self.column_names = list(self.records[0]) if self.records else []
        self.features = features or {}

    def __len__(self):
        return len(self.records)

    def __iter__(self):
        return iter(dict(r) for r in self.records)

    def shuffle(self, seed):
        import random
        records = list(self.records)
        random.Random(seed).shuffle(records)
        return _FakeSplit(records, self.features)

    def select(self, indices):
        return _FakeSplit([self.records[i] for i in indices], self.features)


def test_hub_with_class_label_and_unlabelled_test_split(monkeypatch):
    features = {"sentence": None, "label": _ClassLabel(["negative", "positive"]), "idx": None}
    train = [{"sentence": t, "label": int(y == "positive"), "idx": i} for i, (t, y) in enumerate(rows(30))]
    validation = [{"sentence": f"v{t}", "label": int(y == "positive"), "idx": i} for i, (t, y) in enumerate(rows(5))]
    test = [{"sentence": f"t{t}", "label": -1, "idx": i} for i, (t, y) in enumerate(rows(5))]
    calls = []

    def load(name, config=None):
        calls.append((name, config))
        return {"train": _FakeSplit(train, features), "validation": _FakeSplit(validation, features),
                "test": _FakeSplit(test, features)}
    _fake_datasets(monkeypatch, load)
    task, warnings = load_hub_dataset_with_report("glue", "sst2", max_rows=40)
    assert calls == [("glue", "sst2")]
    assert task.name == "sst2-sst2" or task.name.endswith("sst2")
    assert task.label_names == ("negative", "positive")
    assert len(task.train_texts) == 40 and len(task.test_texts) == 10
    assert all(t.startswith("v") for t in task.test_texts)
    assert any("'test' has no labels" in w for w in warnings)
    assert "text = `sentence`" in task.card and "Hugging Face dataset `glue`" in task.card


def test_hub_without_test_split_is_split_at_random(monkeypatch):
    train = [{"content": t, "stars": 1 if y == "positive" else 0} for t, y in rows(10)]
    _fake_datasets(monkeypatch, lambda name, config=None: {"train": _FakeSplit(train)})
    task = load_hub_dataset("me/reviews", label_column="stars")
    assert task.name == "reviews" and task.label_names == ("0", "1")
    assert Counter(task.test_labels) == {0: 2, 1: 2}
    with pytest.raises(DataFileError, match="has no split 'training'; splits found: 'train'"):
        load_hub_dataset("me/reviews", split_train="training")
