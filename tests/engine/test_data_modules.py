"""The user-data loaders' modules: each one idea, standard library only; Markdown only in the card."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qgoft_core.explore.data import user_files  # noqa: E402
from qgoft_core.explore.data.card import Origin, task_card  # noqa: E402
from qgoft_core.explore.data.errors import DataFileError, problem_lines  # noqa: E402
from qgoft_core.explore.data.parse import Entry  # noqa: E402
from qgoft_core.explore.data.splits import assemble  # noqa: E402

DATA = ROOT / "qgoft_core" / "explore" / "data"
MODULES = ["errors", "parse", "columns", "labels", "card", "splits", "files", "hub", "user_files"]


@pytest.mark.parametrize("name", MODULES)
def test_module_imports_only_the_standard_library_and_its_package(name):
    tree = ast.parse((DATA / f"{name}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            roots = [node.module or ""]
        else:
            continue
        for module in roots:
            top = module.split(".")[0]
            if top == "qgoft_core":
                assert module.startswith("qgoft_core.explore.data."), (name, module)
            elif module == "datasets":
                assert name == "hub"  # the optional Hub package, imported when a dataset is loaded
            else:
                assert top in sys.stdlib_module_names or top == "__future__", (name, module)


def test_only_the_card_writes_markdown():
    for name in MODULES:
        text = (DATA / f"{name}.py").read_text(encoding="utf-8")
        assert ("_md(" in text) == (name == "card"), name


def test_card_escapes_names_from_the_data():
    card = task_card(
        name="my_*data*", origin=Origin("file", name="a`b.csv", format="CSV"), text_column="te`xt",
        label_column="label", split_column=None, presplit=False, test_fraction=0.25, seed=3,
        label_names=("<b>bad</b>", "*good*"), train_labels=[0, 1, 1], test_labels=[0, 1], skipped=2,
    )
    assert card.startswith("**my\\_\\*data\\*** (your CSV file `a'b.csv`).")
    assert "*Rows:* 5 used (3 train / 2 test), 2 skipped." in card
    assert "text = `te'xt`, label = `label`." in card
    assert "*Split:* random, stratified by label: 25% test (seed 3)." in card
    assert "- 0 = &lt;b&gt;bad&lt;/b&gt; (1 train / 1 test)\n- 1 = \\*good\\* (2 train / 1 test)\n" in card


def test_card_names_the_source():
    hub = Origin("hub", name="glue", config="sst2", splits=("train", "validation"))
    card = task_card(name="sst2", origin=hub, text_column="sentence", label_column="label", split_column=None,
                     presplit=True, test_fraction=0.2, seed=0, label_names=("n", "p"),
                     train_labels=[0, 1], test_labels=[1], skipped=0)
    assert "(Hugging Face dataset `glue`, config `sst2`)" in card
    assert "*Split:* the dataset's `train` and `validation` splits." in card
    memory = task_card(name="mem", origin=Origin("records"), text_column="t", label_column="y",
                       split_column="s", presplit=False, test_fraction=0.2, seed=0, label_names=("a", "b"),
                       train_labels=[0], test_labels=[1], skipped=0)
    assert "(rows given in memory)" in memory and "split = `s`" in memory and "from the column `s`" in memory


def test_messages_are_plain_text():
    hub = Origin("hub", name="glue", splits=("train", "validation"))
    entries = [Entry(pos=i, where=f"train row {i}", data={"text": f"t{i}", "label": i % 2}, split="train")
               for i in range(1, 13)]
    with pytest.raises(DataFileError) as err:
        assemble(entries, ["text", "label"], name="glue", display="Hub dataset 'glue'", origin=hub,
                 text_column="text", label_column="label", split_column=None, test_fraction=0.2, seed=0)
    assert str(err.value).startswith(
        "Hub dataset 'glue': no test rows: every usable row is 'train' in the dataset's 'train' and "
        "'validation' splits;")
    assert "`" not in str(err.value)
    assert problem_lines([f"line {i}: bad" for i in range(12)]).splitlines()[-1] == "- ... and 2 more"


@pytest.mark.parametrize("plain, with_report", [("load_text_file", "load_text_file_with_report"),
                                                ("load_hub_dataset", "load_hub_dataset_with_report")])
def test_plain_loaders_take_the_same_parameters(plain, with_report):
    a, b = inspect.signature(getattr(user_files, plain)), inspect.signature(getattr(user_files, with_report))
    assert a.parameters == b.parameters
    assert getattr(user_files, plain).__name__ == plain and getattr(user_files, plain).__doc__
