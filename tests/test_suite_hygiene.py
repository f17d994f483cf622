"""The suite itself: rules that keep it passing when run whole, not only file by file."""
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_module_imports_a_conftest_by_name():
    # Two conftest.py files exist (tests/, tests/browser/); `from conftest import x` gets whichever
    # pytest imported under that name last, so it passed alone and failed in the whole run (CI).
    offenders = [str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py")
                 if re.search(r"^\s*(from\s+conftest\s+import|import\s+conftest\b)", p.read_text(), re.M)]
    assert offenders == [], f"use a fixture instead of importing conftest: {offenders}"
