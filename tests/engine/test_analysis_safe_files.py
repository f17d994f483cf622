"""qgoft_core.io.safe_files: the library's safe readers, used directly (the inspector wraps them)."""
import json
import stat
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from qgoft_core.io import safe_files as S


def adapter_folder(folder, config=None, tensors=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / S.CONFIG_NAME).write_text(json.dumps(config or {"peft_type": "LORA"}))
    save_file(tensors or {"x.lora_A.weight": torch.ones(2, 3)}, str(folder / S.WEIGHTS_NAME))
    return folder


def test_a_clean_folder_reads(tmp_path):
    folder = adapter_folder(tmp_path / "a")
    assert S.read_json_config(folder) == {"peft_type": "LORA"}
    weights = S.find_weights_file(folder)
    assert weights.name == S.WEIGHTS_NAME
    assert torch.equal(S.read_safetensors(weights)["x.lora_A.weight"], torch.ones(2, 3))


def test_the_zip_reader_extracts_only_config_and_safetensors(tmp_path):
    folder = adapter_folder(tmp_path / "a")
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, f"inner/{path.name}")
        zf.writestr("inner/run.sh", "echo hi")
        zf.writestr("inner/adapter_model.bin", b"pickle")
    dest = tmp_path / "out"
    dest.mkdir()
    assert S.extract_adapter_zip(archive, dest) == dest
    assert sorted(p.name for p in dest.iterdir()) == sorted([S.CONFIG_NAME, S.WEIGHTS_NAME])


def test_zip_symlinks_and_too_many_entries_are_refused(tmp_path, monkeypatch):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("a/adapter_config.json")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(S.SafeFileError, match="symbolic link"):
        S.extract_adapter_zip(archive, tmp_path)
    monkeypatch.setattr(S, "MAX_ZIP_ENTRIES", 2)
    with zipfile.ZipFile(tmp_path / "many.zip", "w") as zf:
        for i in range(3):
            zf.writestr(f"f{i}.txt", "x")
    with pytest.raises(S.SafeFileError, match="3 entries"):
        S.extract_adapter_zip(tmp_path / "many.zip", tmp_path)


def test_pickles_are_never_opened(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "adapter_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(S.SafeFileError, match="pickle weight files .*adapter_model.bin"):
        S.find_weights_file(folder)
    with pytest.raises(S.SafeFileError, match="is a pickle file"):
        S.read_safetensors(folder / "adapter_model.bin")
    assert S.is_pickle_name("x.PT") and not S.is_pickle_name("x.safetensors")


def test_config_size_cap_and_errors_are_value_errors(tmp_path):
    folder = adapter_folder(tmp_path / "a")
    with pytest.raises(S.SafeFileError, match="larger than"):
        S.read_json_config(folder, max_bytes=4)
    with pytest.raises(ValueError, match="too large"):
        S.find_weights_file(folder, max_bytes=10)
    assert issubclass(S.SafeFileError, ValueError)
