"""The analysis package's shape: what it exposes, and that the engine draws nothing itself."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_analysis_loads_no_plotting_or_ui_library():
    code = ("import sys\n"
            "import qgoft_core.explore.analysis as A\n"
            "assert callable(A.inspect_adapter) and issubclass(A.InspectionError, ValueError)\n"
            "assert A.CONFIG_NAME == 'adapter_config.json' and 'orth dev' in A.COLUMNS\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('plotly', 'gradio', 'pandas', 'peft')))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_safe_readers_need_only_torch_and_safetensors():
    code = ("import sys\n"
            "import qgoft_core.io.safe_files\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('plotly', 'gradio', 'pandas', 'peft')"
            " or m.startswith(('qgoft_core.explore', 'qgoft_core.viz'))))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
