"""The share-link schema: round trips, clamping, unknown keys, wrong versions, garbage."""
from urllib.parse import parse_qsl

import pytest

from qgoft_core.explore.models import DEFAULT_MODEL_ID
from ui import share


def query(text: str) -> dict:
    return dict(parse_qsl(text.lstrip("?"), keep_blank_values=True))


def test_defaults_without_a_query():
    state = share.parse_link({})
    assert state.values == share.default_values(2000)
    assert not state.notices and not state.hidden


def test_round_trip_of_every_setting():
    values = {"model": "prajjwal1/bert-tiny", "task": "topic", "method": "goft", "scaling": "output",
              "layers": "attention", "lam": 0.5, "lr": 0.0123, "bs": 32, "steps": 150, "seed": 7,
              "layer": "backbone.encoder.layer.3.attention.self.query", "scale": "layer", "tab": "playground"}
    link = share.build_query(values, hidden={"model", "method"})
    assert link.startswith("?v=1&")
    state = share.parse_link(query(link))
    assert state.notices == []
    assert state.values == values
    assert state.hidden == {"model", "method"}


def test_defaults_are_left_out_of_links():
    link = share.build_query(share.default_values(2000), max_steps=2000)
    assert link == "?v=1"
    assert share.parse_link(query(link)).values == share.default_values(2000)


def test_teacher_example_from_the_docs():
    state = share.parse_link(query("?v=1&method=goft&lr=0.002&hide=model,method"))
    assert state.values["method"] == "goft" and state.values["lr"] == 0.002
    assert state.hidden == {"model", "method"} and not state.notices


@pytest.mark.parametrize("key, raw, expected", [
    ("lr", "1e9", 1.0), ("lr", "0", 1e-6), ("lam", "-3", 0.0), ("lam", "99", 10.0), ("bs", "100000", 128),
    ("bs", "0", 1), ("steps", "999999", 500), ("seed", "-1", 0), ("bs", "7.6", 8),
])
def test_numbers_are_clamped_with_a_notice(key, raw, expected):
    state = share.parse_link({"v": "1", key: raw}, max_steps=500)
    assert state.values[key] == expected
    assert any(f"`{key}`" in n for n in state.notices)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "abc", "", "1e", "0x10"])
def test_non_numbers_fall_back_to_the_default(raw):
    state = share.parse_link({"v": "1", "lr": raw})
    assert state.values["lr"] == share.NUMBERS["lr"].default
    assert state.notices


def test_unknown_keys_and_values_are_dropped_with_notices():
    state = share.parse_link({"v": "1", "method": "evil", "scaling": "both", "foo": "bar", "tab": "admin",
                              "steps": "30"})
    defaults = share.default_values()
    assert state.values["method"] == defaults["method"]
    assert state.values["scaling"] == defaults["scaling"]
    assert state.values["tab"] == "train"
    assert state.values["steps"] == 30  # the valid part of a tampered link still applies
    text = " ".join(state.notices)
    assert "`foo`" in text and "evil" in text and "both" in text and "admin" in text
    assert "tab" not in state.given and "steps" in state.given


@pytest.mark.parametrize("version", ["2", "0", "1.0", "", "v1"])
def test_wrong_version_gives_defaults_and_a_notice(version):
    state = share.parse_link({"v": version, "method": "goft", "lr": "0.1", "hide": "model"})
    assert state.values == share.default_values(2000)
    assert state.hidden == set()
    assert len(state.notices) == 1 and "version" in state.notices[0]


def test_missing_version_with_our_keys_is_refused():
    state = share.parse_link({"method": "goft"})
    assert state.values["method"] == share.default_values()["method"]
    assert "version" in state.notice_markdown


def test_foreign_query_strings_are_ignored_silently():
    state = share.parse_link({"__theme": "dark", "utm_source": "x"})
    assert state.values == share.default_values(2000) and not state.notices


def test_model_ids_only_never_paths():
    for bad in ("/etc/passwd", "../../secret", "a/b/c", "x" * 300, "rm -rf", "~/models"):
        state = share.parse_link({"v": "1", "model": bad})
        assert state.values["model"] == DEFAULT_MODEL_ID, bad
        assert state.notices
    assert share.parse_link({"v": "1", "model": "org/name-1.5"}).values["model"] == "org/name-1.5"


def test_allow_list_is_respected():
    allowed = ["prajjwal1/bert-tiny"]
    ok = share.parse_link({"v": "1", "model": "prajjwal1/bert-tiny"}, allowed_models=allowed)
    assert ok.values["model"] == "prajjwal1/bert-tiny" and not ok.notices
    refused = share.parse_link({"v": "1", "model": "gpt2"}, allowed_models=allowed)
    assert refused.values["model"] == DEFAULT_MODEL_ID and refused.notices


def test_hide_keeps_known_controls_only():
    state = share.parse_link({"v": "1", "hide": "model,,lr,bogus,<script>"})
    assert state.hidden == {"model", "lr"}
    assert any("bogus" in n for n in state.notices)


@pytest.mark.parametrize("garbage", [
    {"v": "1", "layer": "<img src=x onerror=alert(1)>"},
    {"v": "1", "lr": ["0.1", "0.2"]},
    {"v": "1", **{f"k{i}": "1" for i in range(100)}},
    {"v": "1", "method": "\x00\xff" * 500},
    {"v": ["1"], "seed": "4" * 400},
])
def test_garbage_never_raises_and_stays_in_range(garbage):
    state = share.parse_link(garbage, max_steps=300)
    values = state.values
    assert values["method"] in share.CHOICES["method"][1]
    assert 1e-6 <= values["lr"] <= 1.0 and 1 <= values["bs"] <= 128 and 1 <= values["steps"] <= 300
    assert 0 <= values["seed"] < 2**31
    assert "<" not in values["layer"]


def test_unreadable_query_object():
    class Broken:
        def items(self):
            raise RuntimeError("boom")

        def keys(self):
            raise RuntimeError("boom")

    state = share.parse_link(Broken())
    assert state.values == share.default_values(2000) and state.notices


def test_echoed_values_cannot_break_out_of_the_notice_markup():
    state = share.parse_link({"v": "1", "method": "`<img src=x onerror=alert(1)>`", "x`<b>": "1"})
    text = state.notice_markdown
    assert "<" not in text and ">" not in text
    assert text.count("`") % 2 == 0  # every code span is closed


def test_a_teachers_link_pins_every_hidden_value_even_at_its_default():
    """Hidden settings are written out, defaults included: if a default changes later, the
    student still gets what the teacher fixed (the visible ones stay short)."""
    values = share.default_values(2000)
    hidden = {"model", "task", "method", "scaling", "layers", "lam", "lr", "bs", "steps", "seed", "export"}
    params = query(share.build_query(values, hidden=hidden, max_steps=2000))
    assert params["model"] == DEFAULT_MODEL_ID and params["task"] == "sentiment" and params["method"] == "qgoft"
    assert params["scaling"] == "none" and params["layers"] == "all"
    assert float(params["lam"]) == 0.01 and float(params["lr"]) == 0.002
    assert params["bs"] == "16" and params["steps"] == "60" and params["seed"] == "0"
    state = share.parse_link(params)
    assert state.values == values and not state.notices and state.hidden == hidden
    assert state.given >= hidden - {"export"}  # each fixed value came from the link, not a default
    # Only what is hidden is pinned: a visible setting at its default is left out.
    few = query(share.build_query(values, hidden={"method"}, max_steps=2000))
    assert few == {"v": "1", "method": "qgoft", "hide": "method"}
    # A model given as "default" is pinned by its id.
    assert query(share.build_query({**values, "model": "default"}, hidden={"model"}))["model"] == DEFAULT_MODEL_ID


def test_old_links_without_pinned_values_still_open_as_before():
    state = share.parse_link(query("?v=1&method=goft&hide=method,lr"))
    assert state.values["lr"] == share.default_values()["lr"] and state.hidden == {"method", "lr"}
    assert not state.notices
