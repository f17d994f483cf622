"""Exporting a strict GOFT adapter as a stock PEFT OFT adapter."""

import json
import math

import pytest
import torch

from qgoft_core import PeftExportError, QGOFTConfig, export_peft_oft, get_qgoft_model
from qgoft_core.io.peft_export import cayley_generator

peft = pytest.importorskip("peft")

pytestmark = pytest.mark.usefixtures("single_thread")


def goft_adapter(tiny, angle_param="plain", seed=31, **cfg):
    q = get_qgoft_model(tiny.build("bert", classifier=True),
                        QGOFTConfig(method="goft", angle_param=angle_param, modules_to_save=["classifier"], **cfg))
    tiny.randomize(q, seed=seed, spread=0.8)
    return q


@pytest.mark.parametrize("angle_param", ["plain", "tanh"])
def test_exported_adapter_loads_in_stock_peft_with_equal_outputs(tiny, tmp_path, angle_param):
    q = goft_adapter(tiny, angle_param)
    inputs = tiny.inputs("bert", batch=3, length=9)
    with torch.no_grad():
        ours = tiny.output(q, inputs)
    directory = export_peft_oft(q, tmp_path / "oft")
    raw = json.loads((directory / "adapter_config.json").read_text())
    assert raw["peft_type"] == "OFT"

    fresh = tiny.build("bert", classifier=True)
    with torch.no_grad():
        base_out = tiny.output(fresh, inputs)
    theirs_model = peft.PeftModel.from_pretrained(fresh, str(directory)).eval()
    with torch.no_grad():
        theirs = tiny.output(theirs_model, inputs)
    assert (ours - base_out).abs().max() > 1e-2  # the adapter is not a no-op
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)


def test_cayley_generator_is_skew_and_inverts_the_rotation(tiny):
    q = goft_adapter(tiny)
    layer = next(iter(q.adapter_layers().values()))
    m = layer.operator(torch.float64)
    g = cayley_generator(m)
    eye = torch.eye(m.shape[0], dtype=torch.float64)
    torch.testing.assert_close(g, -g.T, rtol=0, atol=1e-12)
    torch.testing.assert_close((eye - g) @ torch.linalg.inv(eye + g), m, rtol=0, atol=1e-10)


@pytest.mark.parametrize("cfg, match", [
    ({"method": "qgoft"}, "qGOFT"),
    ({"method": "goft", "scaling": "output"}, "scaling='output'"),
    ({"method": "goft", "scaling": "input"}, "scaling='input'"),
])
def test_non_strict_adapters_are_refused(tiny, tmp_path, cfg, match):
    q = get_qgoft_model(tiny.build("bert", classifier=True), QGOFTConfig(**cfg))
    tiny.randomize(q)
    with pytest.raises(PeftExportError, match=match):
        export_peft_oft(q, tmp_path / "oft")
    assert not (tmp_path / "oft" / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("angle", [math.pi, -math.pi])
def test_angle_at_pi_is_refused(tiny, tmp_path, angle):
    q = goft_adapter(tiny)
    layer = q.adapter_layers()["bert.encoder.layer.1.attention.self.key"]
    with torch.no_grad():
        layer.qgoft_theta.zero_()
        layer.qgoft_theta[3] = angle
    with pytest.raises(PeftExportError, match="eigenvalue at -1"):
        export_peft_oft(q, tmp_path / "oft")


def test_conv1d_layers_are_refused(tiny, tmp_path):
    q = get_qgoft_model(tiny.build("gpt2"), QGOFTConfig(method="goft"))
    with pytest.raises(PeftExportError, match="Conv1D"):
        export_peft_oft(q, tmp_path / "oft")
