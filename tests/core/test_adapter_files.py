"""Adapter folders: exact round trips, and every bad file is refused by name.

A refused file must leave the caller's base model exactly as it was: same
modules (no QGOFTLayer inserted), same weights, same requires_grad flags.
"""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from qgoft_core import (AdapterFormatError, BaseModelMismatchError, MissingKeysError, NotSafetensorsError,
                        QGOFTConfig, QGOFTLayer, QGOFTModel, ShapeMismatchError, UnexpectedKeysError,
                        UnknownMethodError, get_qgoft_model, load_adapter)
from qgoft_core.io.adapter_files import CONFIG_NAME, WEIGHTS_NAME
from qgoft_core.tuners.qgoft.model import ModulesToSaveWrapper

pytestmark = pytest.mark.usefixtures("single_thread")

VARIANTS = [
    {"method": "goft"},
    {"method": "qgoft"},
    {"method": "goft", "angle_param": "tanh", "scaling": "output"},
    {"method": "qgoft", "scaling": "input"},
]


def saved_adapter(tiny, tmp_path, seed=0, **cfg):
    """A trained-looking adapter (random params, perturbed head) saved to tmp_path/adapter."""
    q = get_qgoft_model(tiny.build("bert", seed=seed, classifier=True),
                        QGOFTConfig(modules_to_save=["classifier"], **cfg))
    tiny.randomize(q, seed=21)
    directory = tmp_path / "adapter"
    q.save_pretrained(directory)
    return q, directory


def snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: p.requires_grad for n, p in model.named_parameters()},
            [type(m) for m in model.modules()])


def assert_untouched(model, snap):
    state, flags, types = snap
    assert not any(isinstance(m, (QGOFTLayer, ModulesToSaveWrapper)) for m in model.modules())
    assert [type(m) for m in model.modules()] == types
    now = model.state_dict()
    assert set(now) == set(state)
    for k, v in state.items():
        assert torch.equal(now[k], v), k
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


def rewrite_config(directory, **changes):
    path = directory / CONFIG_NAME
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def rewrite_tensors(directory, edit):
    path = directory / WEIGHTS_NAME
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


def expect_refusal(tiny, directory, error, match, base=None, seed=0):
    """Loading must raise `error` whose message matches `match`, and leave the base alone."""
    base = base if base is not None else tiny.build("bert", seed=seed, classifier=True)
    snap = snapshot(base)
    with pytest.raises(error, match=match) as info:
        load_adapter(base, directory)
    assert isinstance(info.value, AdapterFormatError)
    assert_untouched(base, snap)
    return info.value


# -- round trips ----------------------------------------------------------------------
@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_save_load_into_fresh_base_gives_identical_outputs(tiny, tmp_path, cfg):
    q, directory = saved_adapter(tiny, tmp_path, **cfg)
    inputs = tiny.inputs("bert")
    with torch.no_grad():
        expected = tiny.output(q, inputs)
    assert (directory / CONFIG_NAME).is_file() and (directory / WEIGHTS_NAME).is_file()
    raw = json.loads((directory / CONFIG_NAME).read_text())
    assert raw["method"] == cfg["method"] and raw["format"] == "qgoft-adapter"

    fresh = tiny.build("bert", classifier=True)
    loaded = load_adapter(fresh, directory)
    assert isinstance(loaded, QGOFTModel)
    with torch.no_grad():
        got = tiny.output(loaded, inputs)
    assert torch.equal(got, expected)
    # the head came back too, and nothing is trainable unless asked
    assert list(loaded.saved_modules()) == ["classifier"]
    assert loaded.get_nb_trainable_parameters()[0] == 0
    # the same state, key by key
    mine, theirs = q.adapter_state_dict(), loaded.adapter_state_dict()
    assert set(mine) == set(theirs)
    for k in mine:
        assert torch.equal(mine[k], theirs[k]), k


def test_from_pretrained_trainable(tiny, tmp_path):
    q, directory = saved_adapter(tiny, tmp_path, method="qgoft")
    loaded = QGOFTModel.from_pretrained(tiny.build("bert", classifier=True), directory, is_trainable=True)
    assert loaded.get_nb_trainable_parameters()[0] == q.get_nb_trainable_parameters()[0]
    assert loaded.config.method == "qgoft"


def test_saved_tensor_keys_are_peft_shaped(tiny, tmp_path):
    q, directory = saved_adapter(tiny, tmp_path, method="goft")
    tensors = load_file(str(directory / WEIGHTS_NAME))
    assert all(k.startswith("base_model.model.") for k in tensors)
    assert "base_model.model.classifier.weight" in tensors
    thetas = [k for k in tensors if k.endswith(".qgoft_theta")]
    assert len(thetas) == len(q.adapter_layers())
    for name, layer in q.adapter_layers().items():
        assert tensors[f"base_model.model.{name}.qgoft_theta"].shape == (layer.in_features - 1,)


# -- refusals ---------------------------------------------------------------------------
def test_unknown_method(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    rewrite_config(directory, method="loft")
    expect_refusal(tiny, directory, UnknownMethodError, "'loft'")


def test_missing_key(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    key = "base_model.model.bert.encoder.layer.1.attention.self.value.qgoft_theta"
    rewrite_tensors(directory, lambda t: t.pop(key))
    expect_refusal(tiny, directory, MissingKeysError, key.replace(".", r"\."))


def test_missing_head_key(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="qgoft")
    rewrite_tensors(directory, lambda t: t.pop("base_model.model.classifier.bias"))
    expect_refusal(tiny, directory, MissingKeysError, r"classifier\.bias")


def test_extra_key(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="qgoft")
    key = "base_model.model.bert.pooler.dense.qgoft_blocks"
    rewrite_tensors(directory, lambda t: t.__setitem__(key, torch.zeros(19, 2, 2)))
    expect_refusal(tiny, directory, UnexpectedKeysError, key.replace(".", r"\."))


def test_wrong_shape(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    key = "base_model.model.bert.encoder.layer.0.output.dense.qgoft_theta"  # d = 36 -> 35 angles

    def shrink(t):
        assert t[key].shape == (35,)
        t[key] = t[key][:30].clone()

    rewrite_tensors(directory, shrink)
    err = expect_refusal(tiny, directory, ShapeMismatchError, key.replace(".", r"\."))
    assert "(30,)" in str(err) and "(35,)" in str(err)


def test_adapter_for_a_wider_model(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    raw = json.loads((directory / CONFIG_NAME).read_text())
    name = "bert.encoder.layer.0.attention.self.query"
    raw["layers"][name]["in_features"] = 32
    (directory / CONFIG_NAME).write_text(json.dumps(raw))
    err = expect_refusal(tiny, directory, ShapeMismatchError, name.replace(".", r"\."))
    assert "32" in str(err) and "20" in str(err)


def test_target_modules_absent_from_this_model(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    rewrite_config(directory, target_modules=["q_proj", "v_proj"])
    expect_refusal(tiny, directory, ShapeMismatchError, "q_proj")


def test_base_with_different_weights(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    err = expect_refusal(tiny, directory, BaseModelMismatchError, "base weight differs", seed=99)
    assert "bert.encoder.layer." in str(err)


def test_base_with_different_weights_can_be_forced(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    loaded = load_adapter(tiny.build("bert", seed=99, classifier=True), directory, check_base=False)
    assert len(loaded.adapter_layers()) == 12


def test_base_model_names_decide_only_without_recorded_weights(tiny, tmp_path):
    """One model goes by many names (hub id, local folder, a package's copy): the recorded weight
    norms decide; the names are compared only when a file records no norms."""
    base = tiny.build("bert", classifier=True)
    base.config._name_or_path = "org/base-a"
    q = get_qgoft_model(base, QGOFTConfig(method="goft", modules_to_save=["classifier"]))
    assert q.config.base_model_name_or_path == "org/base-a"
    q.save_pretrained(tmp_path / "adapter")
    renamed = tiny.build("bert", classifier=True)  # the same weights under another name
    renamed.config._name_or_path = "/some/folder/base-a-copy"
    assert len(load_adapter(renamed, tmp_path / "adapter").adapter_layers()) == 12
    # without recorded norms, another name is refused
    raw = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    for meta in raw["layers"].values():
        meta.pop("base_weight_norm", None)
    rewrite_config(tmp_path / "adapter", layers=raw["layers"])
    other = tiny.build("bert", classifier=True)
    other.config._name_or_path = "org/base-b"
    err = expect_refusal(tiny, tmp_path / "adapter", BaseModelMismatchError, "org/base-a", base=other)
    assert "org/base-b" in str(err)


def test_pickle_named_safetensors(tiny, tmp_path):
    q, directory = saved_adapter(tiny, tmp_path, method="goft")
    torch.save(q.adapter_state_dict(), directory / WEIGHTS_NAME)
    expect_refusal(tiny, directory, NotSafetensorsError, "not a valid safetensors")


def test_only_a_pickle_bin(tiny, tmp_path):
    q, directory = saved_adapter(tiny, tmp_path, method="goft")
    (directory / WEIGHTS_NAME).unlink()
    torch.save(q.adapter_state_dict(), directory / "adapter_model.bin")
    err = expect_refusal(tiny, directory, NotSafetensorsError, "pickle")
    assert "adapter_model.bin" in str(err)


def test_garbage_weights_file(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    (directory / WEIGHTS_NAME).write_bytes(b"\x00\x01not safetensors at all")
    expect_refusal(tiny, directory, NotSafetensorsError, "safetensors")


def test_invalid_json(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    (directory / CONFIG_NAME).write_text('{"method": "goft", ')
    expect_refusal(tiny, directory, AdapterFormatError, "not valid JSON")


def test_json_that_is_not_an_object(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    (directory / CONFIG_NAME).write_text("[1, 2, 3]")
    expect_refusal(tiny, directory, AdapterFormatError, "JSON object")


def test_missing_config_and_missing_folder(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    (directory / CONFIG_NAME).unlink()
    expect_refusal(tiny, directory, AdapterFormatError, CONFIG_NAME)
    expect_refusal(tiny, tmp_path / "nowhere", AdapterFormatError, "not a folder")


def test_peft_config_is_not_ours(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    (directory / CONFIG_NAME).write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    expect_refusal(tiny, directory, AdapterFormatError, "LORA")


def test_invalid_config_value(tiny, tmp_path):
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    rewrite_config(directory, scaling="sideways")
    expect_refusal(tiny, directory, AdapterFormatError, "sideways")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_values(tiny, tmp_path, bad):
    _, directory = saved_adapter(tiny, tmp_path, method="qgoft")
    key = "base_model.model.bert.encoder.layer.0.attention.self.key.qgoft_blocks"

    def poison(t):
        t[key] = t[key].clone()
        t[key][3, 1, 0] = bad

    rewrite_tensors(directory, poison)
    expect_refusal(tiny, directory, AdapterFormatError, key.replace(".", r"\.") + ".*NaN")


def test_a_failed_load_keeps_trainable_flags(tiny, tmp_path):
    """Even the flags PEFT-style wrapping flips (requires_grad) are restored on refusal."""
    _, directory = saved_adapter(tiny, tmp_path, method="goft")
    rewrite_tensors(directory, lambda t: t.pop("base_model.model.classifier.weight"))
    base = tiny.build("bert", classifier=True)
    base.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    snap = snapshot(base)
    with pytest.raises(MissingKeysError):
        load_adapter(base, directory)
    assert_untouched(base, snap)
    assert base.classifier.weight.requires_grad
