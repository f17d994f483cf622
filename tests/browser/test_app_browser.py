"""The Train tab in a real browser (Playwright + Debian chromium), as a person uses it.

Train, watch the charts appear, pause, step once, scrub the timeline, export and reload the
adapter with qgoft_core; malformed uploads; share links, tampered links and teacher mode.
Screenshots go to test-artifacts/ (look at them).
"""
import json
import re
import time
import zipfile
from pathlib import Path

import pytest

from tests.browser.browser_utils import (ARTIFACTS, browser_page, choose, plot_svg, screenshot, set_number,
                                         wait_for_app, wait_until)

pytestmark = pytest.mark.browser
LONG = 240_000  # ms: a loaded 2-core machine can take minutes for the first run


@pytest.fixture
def page(served):
    with browser_page() as p:
        wait_for_app(p, served[0])
        yield p


def status_step(page) -> int:
    match = re.search(r"Step (\d+) /", page.locator("#status").inner_text())
    return int(match.group(1)) if match else -1


def wait_for_status(page, pattern: str, timeout_ms: int = LONG) -> str:
    wait_until(lambda: re.search(pattern, page.locator("#status").inner_text()), timeout_ms / 1000,
               message=f"status matching {pattern!r}")
    return page.locator("#status").inner_text()


def visitor_with_run(ctx, step: int):
    return wait_until(lambda: next((v for v in list(ctx.runs._visitors.values())
                                    if v.run is not None and v.run.step_count == step and not v.busy), None),
                      timeout=60, message=f"the server-side run at step {step}")


def test_train_pause_step_scrub_export(page, served, tmp_path):
    _, ctx = served
    choose(page, "method", "GOFT (strict Givens)")
    set_number(page, "steps", 400)
    started = time.perf_counter()
    page.click("#train-btn")
    plot_svg(page, "loss-plot").wait_for(timeout=LONG)
    first_chart_s = time.perf_counter() - started
    plot_svg(page, "angle-heatmap").wait_for(timeout=LONG)
    wait_until(lambda: status_step(page) >= 2, LONG / 1000, message="the step counter to advance")
    assert status_step(page) >= 2
    screenshot(page, "train-running", full_page=True)

    page.click("#pause-btn")
    wait_for_status(page, r"· paused")
    paused_at = status_step(page)
    time.sleep(2)
    assert status_step(page) == paused_at and 2 <= paused_at < 400  # it really stopped

    page.click("#step-btn")  # exactly one more step, then an evaluation and a snapshot
    wait_until(lambda: status_step(page) == paused_at + 1, LONG / 1000, message="one more step")
    last = paused_at + 1
    wait_until(lambda: f"step {last}" in page.locator("#selected-layer").inner_text(), 60,
               message="the views at the new step")
    for chart in ("loss-plot", "angle-heatmap", "angle-hist", "norm-plot", "orth-plot", "energy-plot"):
        assert plot_svg(page, chart).is_visible(), chart

    set_number(page, "timeline", 0)  # scrub back to the first snapshot
    wait_until(lambda: "at step 0" in page.locator("#selected-layer").inner_text(), 60,
               message="the timeline to show step 0")
    assert "drag to the right end" in page.locator("#selected-layer").inner_text()
    screenshot(page, "train-scrubbed-to-step-0", full_page=True)
    set_number(page, "timeline", last)
    wait_until(lambda: "following the live run" in page.locator("#selected-layer").inner_text(), 60,
               message="the timeline to follow the run again")

    page.locator("#export button.label-wrap").first.click()
    page.click("#export-btn")
    page.locator("#download-adapter").wait_for(state="visible", timeout=LONG)
    assert page.locator("#download-peft").is_visible()  # strict, unscaled GOFT: PEFT OFT export offered
    assert "QGOFTModel.from_pretrained" in page.locator("#load-snippet").inner_text()
    screenshot(page, "train-exported", full_page=True)
    with page.expect_download(timeout=60_000) as download_info:
        page.click("#download-adapter")
    archive = tmp_path / "adapter.zip"
    download_info.value.save_as(archive)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "unzipped")
    folder = next((tmp_path / "unzipped").glob("*/adapter_config.json")).parent
    assert_same_outputs(visitor_with_run(ctx, last).run, folder)

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(json.dumps({"train_to_first_chart_s": round(first_chart_s, 2)}))
    print(f"\nTrain pressed -> first drawn chart: {first_chart_s:.2f} s")


def assert_same_outputs(run, folder: Path) -> None:
    """The downloaded adapter, loaded with qgoft_core into a fresh classifier, computes what the run does."""
    import torch

    from qgoft_core import QGOFTModel, share_base
    from qgoft_core.explore.models import SentenceClassifier, load_base

    base = load_base()
    fresh = SentenceClassifier(share_base(base.encoder), num_labels=run.task.num_labels, pooling=base.pooling)
    loaded = QGOFTModel.from_pretrained(fresh, folder).eval()
    batch = base.tokenizer(["a wonderful, moving film", "dull and far too long", "the plot is thin"],
                           return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = run.tuned.model(**batch).logits
        got = loaded(**batch).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


BAD_UPLOADS = {
    "wrong_columns.csv": ("sentence\n" + "\n".join(f"sentence number {i}" for i in range(30)) + "\n").encode(),
    "empty.csv": b"",
    "junk.csv": bytes(range(256)) * 40,
}


def test_malformed_uploads_show_errors_and_the_app_keeps_working(page, tmp_path):
    for name, content in BAD_UPLOADS.items():
        path = tmp_path / name
        path.write_bytes(content)
        clear = page.locator("#upload button[aria-label='Clear']")
        if clear.count():
            clear.first.click()
        page.locator("#upload input[type=file]").set_input_files(str(path))
        wait_until(lambda: name in page.locator("#upload-status").inner_text(), 60,
                   message=f"an error for {name}")
        assert "cannot be used" in page.locator("#upload-status").inner_text()
        assert "Film reviews" in page.locator("#task input").input_value()  # the previous task is kept
        screenshot(page, f"upload-error-{path.stem}")
    rows = ["text,label"] + [f"{'a great' if i % 2 else 'an awful'} film number {i},{'pos' if i % 2 else 'neg'}"
                             for i in range(40)]
    good = tmp_path / "films.csv"
    good.write_text("\n".join(rows) + "\n")
    page.locator("#upload button[aria-label='Clear']").first.click()
    page.locator("#upload input[type=file]").set_input_files(str(good))
    wait_until(lambda: "Loaded" in page.locator("#upload-status").inner_text(), 60, message="the good file")
    assert "Your data: films" in page.locator("#task input").input_value()
    screenshot(page, "upload-ok")


CONTROL_VALUES_JS = """() => {
    const value = (selector) => { const e = document.querySelector(selector); return e ? e.value : null; };
    return {method: value('#method input'), lr: value('#lr input'), steps: value('#steps input'),
            seed: value('#seed input')};
}"""


def control_values(page) -> dict:
    """The settings as the page shows them, read in one go (the page may re-render meanwhile);
    a control hidden by teacher mode shows no value."""
    raw = page.evaluate(CONTROL_VALUES_JS)

    def number(text, kind=float):
        try:
            return kind(float(text))
        except (TypeError, ValueError):
            return None

    return {"method": raw["method"] if raw["method"] is not None else "(hidden)", "lr": number(raw["lr"]),
            "steps": number(raw["steps"], int), "seed": number(raw["seed"], int)}


def test_share_link_reopens_the_same_settings_and_teacher_mode_hides_controls(served):
    url = served[0]
    with browser_page() as page:
        wait_for_app(page, url + "?v=1&method=goft&lr=0.005&steps=30&seed=7&hide=model,method")
        wait_until(lambda: control_values(page)["seed"] == 7, 30, message="the link's settings")
        assert control_values(page) == {"method": "(hidden)", "lr": 0.005, "steps": 30, "seed": 7}
        assert page.locator("#model").is_hidden() and page.locator("#method").is_hidden()
        assert page.locator("#lr").is_visible() and page.locator("#link-notice").is_hidden()
        screenshot(page, "teacher-mode")
        page.locator("#share button.label-wrap").first.click()
        page.click("#share-btn")
        wait_until(lambda: page.locator("#share-link textarea, #share-link input").first.input_value()
                   .startswith("http"), 30, message="the share link")
        link = page.locator("#share-link textarea, #share-link input").first.input_value()
    # The hidden method kept the link's value: it travels on into the next link.
    assert "method=goft" in link and "hide=model,method" in link and "seed=7" in link
    with browser_page() as page:
        wait_for_app(page, link.replace("hide=model,method", "hide=model"))  # the teacher's own view
        wait_until(lambda: control_values(page)["seed"] == 7, 30, message="the shared settings")
        assert control_values(page) == {"method": "GOFT (strict Givens)", "lr": 0.005, "steps": 30, "seed": 7}
        assert page.locator("#model").is_hidden() and page.locator("#method").is_visible()


@pytest.mark.parametrize("query, expect_in_notice", [
    ("?v=1&method=evil&lr=1e9&foo=bar", ["evil", "foo", "lr = 1e+09"]),
    ("?v=99&method=goft&hide=method", ["version"]),
])
def test_tampered_link_opens_with_safe_defaults_and_a_notice(served, query, expect_in_notice):
    with browser_page() as page:
        wait_for_app(page, served[0] + query)
        notice = page.locator("#link-notice")
        notice.wait_for(state="visible", timeout=30_000)
        for text in expect_in_notice:
            assert text in notice.inner_text()
        values = control_values(page)
        assert values["method"] == "qGOFT (quasi-Givens)"  # the default
        assert values["lr"] <= 1.0 and page.locator("#method").is_visible()
        screenshot(page, "tampered-link-" + ("version" if "v=99" in query else "values"))


def test_closing_the_tab_frees_the_visitors_run(served):
    url, ctx = served
    before = set(ctx.runs._visitors)
    with browser_page() as page:
        wait_for_app(page, url)
        session = wait_until(lambda: next(iter(set(ctx.runs._visitors) - before), None), 30,
                             message="the page's visitor")
        visitor = ctx.runs.peek(session)
        visitor.run = object()  # stands in for a trained run (tens of MB)
    wait_until(lambda: ctx.runs.peek(session) is None, 60, message="the closed tab's visitor to be released")
    assert visitor.run is None and visitor.stop.is_set()
