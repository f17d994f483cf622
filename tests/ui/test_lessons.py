"""The teaching presets: shipped precomputed runs, their format, and the Lessons tab's views.

The runs were made by demos/make_precomputed_lessons.py with the real engine;
these tests read what ships (never pickle), check shapes and metadata, and check
that each lesson shows what its "what to notice" sentence says it shows.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from demos import presets as P
from demos.learn_texts import CHART_NOTES

SNAPSHOT_STEPS = list(range(0, P.COMMON_CONFIG["steps"] + 1, P.COMMON_CONFIG["eval_every"]))
MINILM_LAYERS = 6 * 6  # 6 blocks x (query, key, value, attention.output.dense, intermediate.dense, output.dense)
MAX_TOTAL_BYTES = 5 * 1024**2


def _pairs(name: str) -> int:
    """d - 1 for a MiniLM layer: d = 1536 for the MLP's down projection, 384 elsewhere."""
    return 1535 if name.endswith("output.dense") and ".attention." not in name else 383


@pytest.fixture(scope="module")
def runs() -> dict[str, P.PrecomputedRun]:
    return {run_id: P.load_run(run_id) for run_id in P.RUNS}


# -- what ships ---------------------------------------------------------------
def test_every_run_has_its_two_files_and_nothing_else_ships():
    expected = {f"{r}.{ext}" for r in P.RUNS for ext in ("json", "npz")}
    assert {p.name for p in P.PRECOMPUTED_DIR.iterdir()} == expected


def test_total_size_is_small():
    total = sum(p.stat().st_size for p in P.PRECOMPUTED_DIR.iterdir())
    assert total < MAX_TOTAL_BYTES, f"{total / 1e6:.2f} MB"


@pytest.mark.parametrize("run_id", list(P.RUNS))
def test_npz_loads_without_pickle_and_has_the_right_arrays(run_id):
    with np.load(P.PRECOMPUTED_DIR / f"{run_id}.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    assert set(arrays) == {"angles", "angle_offsets", "norm_ratio", "norm_offsets", "orth_dev", "he_drift"}
    n_snap = len(SNAPSHOT_STEPS)
    assert arrays["angles"].dtype == np.float16 and arrays["norm_ratio"].dtype == np.float16
    assert arrays["orth_dev"].dtype == np.float64 and arrays["he_drift"].dtype == np.float64
    for key, offsets in (("angles", "angle_offsets"), ("norm_ratio", "norm_offsets")):
        off = arrays[offsets]
        assert off.shape == (MINILM_LAYERS + 1,) and off[0] == 0 and np.all(np.diff(off) >= 0)
        assert arrays[key].shape == (n_snap, off[-1])
    assert arrays["orth_dev"].shape == arrays["he_drift"].shape == (n_snap, MINILM_LAYERS)
    assert np.isfinite(arrays["he_drift"]).all() and np.isfinite(arrays["norm_ratio"]).all()


@pytest.mark.parametrize("run_id", list(P.RUNS))
def test_json_records_and_reproducibility_metadata(run_id):
    record = json.loads((P.PRECOMPUTED_DIR / f"{run_id}.json").read_text())
    assert record["format_version"] == P.FORMAT_VERSION and record["run_id"] == run_id
    # the configuration that made it: the shared settings plus the run's own
    for key, value in {**P.COMMON_CONFIG, **P.RUNS[run_id]}.items():
        assert record["config"][key] == value, key
    made = record["generated_by"]
    assert made["script"] == "demos/make_precomputed_lessons.py"
    assert made["command"] == f"{P.MAKE_COMMAND} {run_id}"
    assert (P.PRECOMPUTED_DIR.parent / "make_precomputed_lessons.py").is_file()
    for key in ("date", "qgoft_core", "torch", "numpy", "python", "device"):
        assert made[key], key
    assert made["npz_sha256"] == P.file_sha256(P.PRECOMPUTED_DIR / f"{run_id}.npz")
    assert record["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert record["trainable_parameters"] > 0
    assert [s["step"] for s in record["steps"]] == list(range(1, P.COMMON_CONFIG["steps"] + 1))
    assert all(set(s) == {"step", "loss", "reg_loss", "lr", "sec_per_step"} for s in record["steps"])
    assert [e["step"] for e in record["evals"]] == SNAPSHOT_STEPS
    assert [r["step"] for r in record["retention"]] == SNAPSHOT_STEPS
    assert record["snapshot_steps"] == SNAPSHOT_STEPS
    assert len(record["layer_names"]) == MINILM_LAYERS


def test_loaded_runs_have_per_layer_arrays_of_the_right_size(runs):
    for run_id, run in runs.items():
        rotation = run.method in ("goft", "qgoft")
        for index in range(len(SNAPSHOT_STEPS)):
            snap = run.snapshot(index)
            assert snap["step"] == SNAPSHOT_STEPS[index]
            for name, layer in snap["layers"].items():
                assert layer["angles"].size == (_pairs(name) if rotation else 0), (run_id, name)
                assert layer["angles"].dtype == np.float32
                assert layer["norm_ratio"].size > 0
        if rotation:  # every rotation starts at exactly the identity
            assert all(np.all(a == 0) for a in run.angles[0].values())
        else:
            assert np.isnan(run.orth_dev).all()


def test_loaded_runs_are_run_histories_that_round_trip(runs):
    from qgoft_core.explore.history import RunHistory
    run = runs["qgoft"]
    assert isinstance(run.history, RunHistory) and run.history.snapshot_steps == SNAPSHOT_STEPS
    assert run.snapshot(0) is run.history.snapshots[0]
    back = RunHistory.from_json(run.history.to_json())
    for before, after in zip(run.history.snapshots, back.snapshots):
        for name, layer in before["layers"].items():
            assert np.array_equal(layer["angles"], after["layers"][name]["angles"]), name
    assert [r["kept"] for r in back.retention] == [r["kept"] for r in run.retention]
    steps, series = run.series("orth_dev", 2)
    assert steps == SNAPSHOT_STEPS[:3] and len(series) == MINILM_LAYERS


# -- the presets ----------------------------------------------------------------
def test_every_preset_has_its_notice_and_known_runs():
    assert len(P.PRESETS) == 4
    for key, preset in P.PRESETS.items():
        assert preset.key == key and preset.title
        assert len(preset.notice) > 40 and preset.notice.endswith(".")
        assert preset.run_a in P.RUNS and preset.run_b in P.RUNS and preset.run_a != preset.run_b
        assert preset.chart in CHART_NOTES
        assert preset.run_a in P.RUN_LABELS and preset.run_b in P.RUN_LABELS


def _final_max(run: P.PrecomputedRun, table: np.ndarray) -> float:
    return float(np.nanmax(np.abs(table[-1])))


def test_strict_vs_quasi_shows_what_its_notice_says(runs):
    goft, qgoft = runs["goft"], runs["qgoft"]
    assert _final_max(goft, goft.he_drift) < 1e-7 and _final_max(goft, goft.orth_dev) < 1e-5
    assert _final_max(qgoft, qgoft.he_drift) > 100 * _final_max(goft, goft.he_drift)
    assert _final_max(qgoft, qgoft.orth_dev) > 100 * _final_max(goft, goft.orth_dev)
    for run in (goft, qgoft):  # both learn the task
        assert run.evals[-1]["accuracy"] > 0.75


def test_lambda_too_large_pins_the_shear_but_not_the_norms(runs):
    default, huge = runs["qgoft"], runs["qgoft_lambda_huge"]
    (_, sums_default), (_, sums_huge) = default.penalty_sums(), huge.penalty_sums()
    assert sums_huge[-1] < sums_default[-1] / 1000  # Σ⟨α,β⟩² thousands of times smaller
    assert huge.steps[29]["loss"] > default.steps[29]["loss"]  # the task loss falls more slowly
    # ... but the operator is no closer to orthogonal and the energy drifts as much
    assert _final_max(huge, huge.orth_dev) > 0.5 * _final_max(default, default.orth_dev)
    assert _final_max(huge, huge.he_drift) > 0.5 * _final_max(default, default.he_drift)


def test_high_learning_rate_sends_the_angles_past_a_half_turn(runs):
    calm, wild = runs["goft"], runs["goft_lr_high"]
    assert wild.max_abs_angle_deg()[1] > 180 and wild.max_abs_angle_deg()[-1] > 360  # past a half turn
    assert calm.max_abs_angle_deg()[-1] < 20
    assert wild.evals[-1]["accuracy"] < 0.6 < 0.85 < calm.evals[-1]["accuracy"]
    assert max(s["loss"] for s in wild.steps) > 10 * max(s["loss"] for s in calm.steps)
    # still a rotation: the energy is kept, what the model knew is not
    assert _final_max(wild, wild.he_drift) < 1e-7
    assert wild.retention[-1]["kept"] < 0.5 < 0.95 < calm.retention[-1]["kept"]


def test_goft_vs_lora_forgetting(runs):
    goft, lora = runs["goft"], runs["lora"]
    assert min(r["accuracy"] for r in (goft.evals[-1], lora.evals[-1])) > 0.85
    assert _final_max(goft, goft.he_drift) < 1e-7 < _final_max(lora, lora.he_drift)
    assert min(r["kept"] for r in goft.retention) > 0.99
    assert min(r["kept"] for r in lora.retention) < 0.85
    assert all(g["cka"] >= l["cka"] for g, l in zip(goft.evals, lora.evals))


# -- loading safely ---------------------------------------------------------------
def test_missing_files_and_pickled_arrays_raise_a_named_error(tmp_path):
    with pytest.raises(P.PresetError, match="goft.json is missing"):
        P.load_run("goft", str(tmp_path))
    (tmp_path / "goft.json").write_text((P.PRECOMPUTED_DIR / "goft.json").read_text())
    np.savez(tmp_path / "goft.npz", angles=np.array([{"a": 1}], dtype=object))
    with pytest.raises(P.PresetError, match="goft.npz"):
        P.load_run("goft", str(tmp_path))
    with pytest.raises(P.PresetError, match="unknown preset"):
        P.load_preset("nope")


# -- the tab's views -------------------------------------------------------------
@pytest.mark.parametrize("key", list(P.PRESETS))
def test_lesson_view_at_start_and_end(key):
    from ui.lessons_tab import CHARTS, lesson_view

    for step in (0, 10**9):
        view = lesson_view(key, step)
        assert len(view["charts"]) == 2 * len(CHARTS)
        assert P.PRESETS[key].notice in view["notice"]
        assert view["summary"].startswith(f"**At step {0 if step == 0 else SNAPSHOT_STEPS[-1]}**")
        for fig in (*view["charts"], view["kept"]):
            assert fig.layout.height and fig.layout.title.text


def test_loss_curves_grow_with_the_timeline():
    from ui.lessons_tab import lesson_view

    early = lesson_view("strict_vs_quasi", 20)["charts"][0]
    late = lesson_view("strict_vs_quasi", 60)["charts"][0]
    assert len(early.data[0].x) == 20 and len(late.data[0].x) == 60
    assert tuple(early.layout.xaxis.range) == tuple(late.layout.xaxis.range)  # fixed step axis


# -- in the browser: the Lessons tab and the guided tour on the Learn tab ----------------
def _record_texts(page, elem_id: str) -> None:
    """Keep every text #elem_id takes (frames can arrive faster than a poll would see them)."""
    page.evaluate("""(id) => { const el = document.getElementById(id);
        window.__texts = window.__texts || {}; window.__texts[id] = [];
        new MutationObserver(() => window.__texts[id].push(el.innerText.trim()))
            .observe(el, {subtree: true, childList: true, characterData: true}); }""", elem_id)


@pytest.mark.browser
def test_lessons_tab_and_tour_in_the_browser():
    from tests.browser.browser_utils import (browser_page, build_test_app, launched, plot_svg, screenshot,
                                     wait_for_app, wait_until)
    from ui.lessons_tab import CHARTS

    plots = [f"lessons-{chart}-{side}" for chart in CHARTS for side in "ab"] + ["lessons-kept"]
    demo, _ = build_test_app()
    with launched(demo) as url, browser_page() as page:
        wait_for_app(page, url)
        page.get_by_role("tab", name="Lessons").click()
        # the default lesson is drawn at once, at its last step
        notice = page.locator("#lessons-notice")
        assert P.PRESETS["strict_vs_quasi"].notice in notice.inner_text()
        for elem_id in plots:
            plot_svg(page, elem_id).wait_for(state="visible", timeout=30_000)
        summary = page.locator("#lessons-summary")
        assert "At step 60" in summary.inner_text()
        assert not page.locator("#lessons-error").is_visible()
        screenshot(page, "lessons_strict_vs_quasi", full_page=True)

        # another lesson: its sentence and its runs
        page.locator("#lessons-preset label", has_text="Learning rate too high").click()
        wait_until(lambda: P.PRESETS["lr_too_high"].notice in notice.inner_text(), 30, message="the new notice")
        assert "GOFT, lr 0.5" in page.locator("#lessons-run-b").inner_text()

        # scrub the timeline
        box = page.locator("#lessons-timeline input[type=number]")
        box.fill("30")
        box.press("Enter")
        wait_until(lambda: "At step 30" in summary.inner_text(), 30, message="step 30")

        # play walks the timeline up to the end
        _record_texts(page, "lessons-summary")
        page.locator("#lessons-play").click()
        wait_until(lambda: "At step 60" in summary.inner_text(), 60, message="the end of the timeline")
        seen = page.evaluate("window.__texts['lessons-summary']")
        shown = [s for s in (40, 50, 60) if any(t.startswith(f"At step {s}") for t in seen)]
        assert shown == [40, 50, 60], seen
        screenshot(page, "lessons_lr_too_high", full_page=True)

        # the guided tour on the Learn tab: Next / Back name the panel, "Show me" goes there
        page.get_by_role("tab", name="Learn").click()
        panel = page.locator("#tour-panel")
        assert "Step 1 of" in panel.inner_text() and "Givens playground" in panel.inner_text()
        page.locator("#tour-next").click()
        page.locator("#tour-next").click()
        wait_until(lambda: "Step 3 of" in panel.inner_text(), 15, message="tour step 3")
        page.locator("#tour-back").click()
        wait_until(lambda: "Step 2 of" in panel.inner_text(), 15, message="tour step 2")
        assert "Train tab: the run settings" in panel.inner_text()
        screenshot(page, "learn_tour")
        page.locator("#tour-show").click()
        wait_until(lambda: page.locator("#train-controls").is_visible(), 15, message="the Train tab")


# -- fixed axes while a lesson plays ----------------------------------------------------
def _stub_run(run_id: str, kept: list[float], cka: list[float]):
    from types import SimpleNamespace
    steps = [10 * i for i in range(len(kept))]
    return SimpleNamespace(run_id=run_id, label=run_id, snapshot_steps=steps,
                           retention=[{"step": s, "kept": k} for s, k in zip(steps, kept)],
                           evals=[{"step": s, "cka": c} for s, c in zip(steps, cka)])


def _y_ranges(fig) -> tuple:
    return tuple(fig.layout.yaxis.range), tuple(fig.layout.yaxis2.range)


def test_kept_figure_y_axes_are_fixed_over_the_whole_lesson():
    """The 'What the model kept' chart used to rescale its y axes at every frame (1.0 at step 0,
    then [0.9999, 1.0013] ... [0.9757, 1.0082]): now one range per panel from every frame's data."""
    from ui.lessons_tab import kept_figure, kept_ranges

    runs = (_stub_run("a", [1.0, 1.001, 1.005, 0.99], [1.0, 0.99, 0.9, 0.8]),
            _stub_run("b", [1.0, 0.98, 0.95, 1.002], [1.0, 0.7, 0.5, 0.52]))
    ranges = kept_ranges(runs)
    assert ranges["kept"][0] < 0.95 and ranges["kept"][1] > 1.005
    assert ranges["cka"][0] < 0.5 and ranges["cka"][1] > 1.0
    seen = {_y_ranges(kept_figure(runs, step)) for step in runs[0].snapshot_steps}
    assert seen == {(tuple(ranges["kept"]), tuple(ranges["cka"]))}, seen
    flat = kept_figure(runs[:1] * 2, 0)  # one point at 1: still a range of its own, not [1, 1]
    assert flat.layout.yaxis.range[0] < 1.0 < flat.layout.yaxis.range[1]


@pytest.mark.parametrize("key", list(P.PRESETS))
def test_shipped_lessons_keep_their_kept_axes_while_playing(key):
    from ui.lessons_tab import kept_figure

    _, run_a, run_b = P.load_preset(key)
    figs = [kept_figure((run_a, run_b), s) for s in run_a.snapshot_steps]
    assert len({_y_ranges(f) for f in figs}) == 1
    lo, hi = figs[0].layout.yaxis.range
    last = figs[-1]
    for trace in last.data:  # every point of the last frame lies inside the fixed axis
        axis = last.layout.yaxis2 if trace.yaxis == "y2" else last.layout.yaxis
        ys = [y for y in trace.y if y is not None]
        assert all(axis.range[0] <= y <= axis.range[1] for y in ys), (trace.name, ys, axis.range)


# -- titles name the runs in column order -----------------------------------------------
def _names(side: str, label: str) -> bool:
    """`side` (a title's words for one run) names the run with this label: whole words, any case."""
    return re.search(rf"(?<!\w){re.escape(side.strip())}(?!\w)", label, re.IGNORECASE) is not None


def _vs_pairs(title: str) -> list[tuple[str, str]]:
    """Each 'X vs Y' of a title: X back to the last '(' ',' ':' or the start, Y up to the next."""
    return [(m.group(1).strip(), m.group(2).strip()) for m in re.finditer(r"([^(,:]+?) vs ([^(),:]+)", title)]


def test_vs_pairs_reads_the_title():
    assert _vs_pairs("What λ does (qGOFT, λ = 0.01 vs λ = 10)") == [("λ = 0.01", "λ = 10")]
    assert _vs_pairs("Strict vs quasi (GOFT vs qGOFT)") == [("Strict", "quasi"), ("GOFT", "qGOFT")]


@pytest.mark.parametrize("key", list(P.PRESETS))
def test_every_two_run_title_names_its_runs_in_column_order(key):
    """'λ = 10 vs λ = 0.01' sat over column A = λ = 0.01 and B = λ = 10: an 'X vs Y' in a title
    must name run A first. A side that names both runs or neither (e.g. 'quasi') is not checked,
    but every title must have at least one 'X vs Y' that names each run exactly."""
    preset = P.PRESETS[key]
    label_a, label_b = P.RUN_LABELS[preset.run_a], P.RUN_LABELS[preset.run_b]
    checked = 0
    for left, right in _vs_pairs(preset.title):
        a_left, b_left = _names(left, label_a), _names(left, label_b)
        a_right, b_right = _names(right, label_a), _names(right, label_b)
        assert not (b_left and not a_left and a_right and not b_right), (
            f"{preset.title!r}: {left!r} is column B ({label_b}), {right!r} is column A ({label_a})")
        assert not (b_left and not a_left) and not (a_right and not b_right), (preset.title, left, right)
        checked += (a_left and not b_left) and (b_right and not a_right)
    assert checked, f"{preset.title!r} names neither run in an 'X vs Y' of their labels"


# -- the summary table: one format per quantity, numbers above 1 explained ----------------
def _summary_rows(text: str) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 3:
            rows[cells[0].replace("\\|", "|")] = (cells[1], cells[2])
    return rows


@pytest.mark.parametrize("key", list(P.PRESETS))
def test_summary_angles_share_one_format_with_the_heatmap(key):
    """'6.4°' sat beside '4.48°' (format .3g): every max |angle| cell now has one decimal, as the
    heatmap's colour-scale title."""
    from ui.lessons_tab import summary_markdown, run_figures, _preset_ranges

    _, run_a, run_b = P.load_preset(key)
    for index in range(len(run_a.snapshot_steps)):
        cells = _summary_rows(summary_markdown((run_a, run_b), index))["max |angle|"]
        for cell in cells:
            assert cell == "–" or re.fullmatch(r"\d+\.\d°", cell), (key, index, cells)
    heatmap = run_figures(run_a, len(run_a.snapshot_steps) - 1, _preset_ranges(key))["heatmap"]
    if "colour scale" in heatmap.layout.title.text:
        assert re.search(r"±\d+\.\d°</sup>", heatmap.layout.title.text), heatmap.layout.title.text


def test_retention_above_one_is_explained_under_the_table():
    """strict_vs_quasi at step 60: GOFT keeps 1.0017 of the base's retention; the summary says why
    a value above 1 is possible (noise around the base), and says nothing when none is above 1."""
    from ui.lessons_tab import summary_markdown

    _, run_a, run_b = P.load_preset("strict_vs_quasi")
    shown = 0
    for index in range(len(run_a.snapshot_steps)):
        text = summary_markdown((run_a, run_b), index)
        kept = _summary_rows(text)["retention kept"]
        above = [c for c in kept if c != "–" and float(c) > 1.0]
        assert ("noise around the base" in text) == bool(above), (index, kept)
        assert all(cell in text.splitlines()[-1] for cell in above), text  # the note names the values
        shown += bool(above)
    assert shown  # the shipped data has a step with retention above 1 (1.0017 at step 60)
