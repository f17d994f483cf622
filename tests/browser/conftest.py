"""Fixtures shared by the browser tests."""
from __future__ import annotations

import pytest

from tests.browser.browser_utils import build_test_app, launched, require_chromium


@pytest.fixture(scope="module")
def served():
    """A test app served on a free port for one test module: (url, its AppContext).

    A module that needs another app (other settings, more yielded) defines its own `served`.
    """
    require_chromium()
    demo, ctx = build_test_app(max_steps=500)
    with launched(demo) as url:
        yield url, ctx
