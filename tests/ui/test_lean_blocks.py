"""LeanBlocks: the same outputs as Gradio's Blocks, without rebuilding components for empty updates."""
import asyncio
import importlib
import importlib.util
import sys

import gradio as gr
import pytest
from gradio.state_holder import SessionState

from ui.lean_blocks import LeanBlocks, is_empty_update, skip_absent_imports


def build(cls):
    with cls() as demo:
        parts = dict(md=gr.Markdown("x"), plot=gr.Plot(), slider=gr.Slider(0, 10), state=gr.State(1),
                     table=gr.Dataframe(headers=["p", "q"]), drop=gr.Dropdown(choices=["a", "b"]))
        gr.Button().click(lambda: None, None, list(parts.values()))
    return demo, parts, next(iter(demo.fns.values()))


def predictions(p):
    """What event functions return: dicts naming some outputs, a bare skip, lists mixing everything."""
    return [
        {p["md"]: "hello"},
        gr.skip(),
        {p["slider"]: gr.Slider(maximum=20), p["drop"]: gr.Dropdown(choices=["c"], value="c")},
        ["v", gr.skip(), gr.update(maximum=5), gr.skip(), [[1, 2]], gr.update()],
        {p["state"]: 7, p["table"]: [[3, 4]]},
    ]


def outputs_of(cls):
    demo, parts, fn = build(cls)
    state = SessionState(demo)
    return [asyncio.run(demo.postprocess_data(fn, pred, state)) for pred in predictions(parts)]


def test_outputs_equal_gradios_own_for_values_skips_and_property_updates():
    assert outputs_of(LeanBlocks) == outputs_of(gr.Blocks)


def test_an_empty_update_constructs_no_component(monkeypatch):
    # The cost it removes: Gradio built a new component (and its JSON schema) per skipped output.
    built = []
    real_init = gr.blocks.Block.__init__

    def counting_init(self, *args, **kwargs):
        built.append(type(self).__name__)
        real_init(self, *args, **kwargs)

    counts = {}
    for cls in (gr.Blocks, LeanBlocks):
        demo, parts, fn = build(cls)
        state = SessionState(demo)
        monkeypatch.setattr(gr.blocks.Block, "__init__", counting_init)
        built.clear()
        asyncio.run(demo.postprocess_data(fn, {parts["md"]: "tick"}, state))
        monkeypatch.setattr(gr.blocks.Block, "__init__", real_init)
        counts[cls.__name__] = len(built)
    assert counts["Blocks"] >= 4  # plot, slider, table, drop rebuilt for nothing by the stock path
    assert counts["LeanBlocks"] == 0


def test_a_property_update_still_changes_the_session_config():
    demo, parts, fn = build(LeanBlocks)
    state = SessionState(demo)
    asyncio.run(demo.postprocess_data(fn, {parts["slider"]: gr.Slider(maximum=42)}, state))
    assert state[parts["slider"]._id].maximum == 42


@pytest.mark.parametrize("value, empty", [(gr.skip(), True), (gr.update(), True), (gr.update(visible=False), False),
                                          ("text", False), ({"__type__": "generic"}, False)])
def test_is_empty_update(value, empty):
    assert is_empty_update(value) is empty


def test_absent_modules_are_marked_once_and_installed_ones_never(monkeypatch):
    name = "qgoft_no_such_module_xyz"
    monkeypatch.delitem(sys.modules, name, raising=False)
    assert skip_absent_imports([name, "json"]) == [name]
    assert sys.modules[name] is None and importlib.util.find_spec(name) is None
    with pytest.raises(ImportError):
        importlib.import_module(name)
    assert sys.modules["json"] is not None and skip_absent_imports([name]) == []
    monkeypatch.delitem(sys.modules, name)
