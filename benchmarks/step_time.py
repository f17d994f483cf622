"""Step time and memory of GOFT / qGOFT against PEFT's methods, in one run.

The benchmark itself lives in the package (`qgoft_core.explore.step_time`) so that
`python -m qgoft_core bench` runs it from an installed copy too; this script is the
source checkout's entry point with the same options:

    python benchmarks/step_time.py --markdown --json benchmarks/results_cpu.json
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from qgoft_core.explore.step_time import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
