"""The Compare tab's views of a multi-seed comparison: mean ± sd cells and error bars, a summary
that states its rule and names the gaps the spread supports and those it does not, what each
method wins in the rows' own numbers, why qGOFT can be less orthogonal than LoRA, and a
description that names the seeds. Constructed rows; no training."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qgoft_core.explore.compare import (COMPARE_METHODS, ORTH_LEAST_SQUARES, ORTH_ROTATION, ORTH_UNTOUCHED,
                                        CompareResult, CompareRow)
from qgoft_core.viz import compare_views as CV

SPREADS = ("accuracy", "cka", "retention_kept", "orth_dev", "he_drift", "sec_per_step", "retention_tuned")


def _row(key: str, accuracy: float, *, sd: float = 0.01, n: int = 3, kept: float = 0.97, cka: float = 0.5,
         params: int = 100_000, orth: float = 1e-2, kind: str = ORTH_ROTATION, drift: float = 1e-5,
         spreads: dict | None = None) -> CompareRow:
    """A row of `n` seeds; every sd is `sd` unless `spreads` names another (NaN for one seed)."""
    spec = COMPARE_METHODS[key]
    row = CompareRow(key=key, label=spec.label, method=spec.method, trainable_params=params, accuracy=accuracy,
                     retention_kept=kept, cka=cka, orth_dev=orth, orth_dev_kind=kind, he_drift=drift,
                     sec_per_step=0.3, retention_base=0.9, retention_tuned=0.9 * kept, lr=spec.lr, steps=60,
                     n_seeds=n)
    for name in SPREADS:
        setattr(row, f"{name}_sd", (spreads or {}).get(name, sd) if n > 1 else math.nan)
    return row


def _result(rows, seeds=(0, 1, 2)) -> CompareResult:
    return CompareResult(task="sentiment", seed=seeds[0], steps=60, model="m", rows=rows, seeds=list(seeds),
                         meta={"batch_size": 16, "created": "2026-12-02T10:00:00+00:00"})


def _rows():
    return [_row("goft", 0.904, sd=0.002, kept=0.994, cka=0.694, params=21_470, orth=6.6e-8, drift=7e-11),
            _row("qgoft", 0.917, sd=0.004, kept=0.986, cka=0.565, params=83_570, orth=0.164, drift=7e-5),
            _row("lora", 0.912, sd=0.006, kept=0.955, cka=0.295, params=332_546, orth=0.032,
                 kind=ORTH_LEAST_SQUARES, drift=7e-6),
            _row("boft", 0.954, sd=0.008, kept=0.968, cka=0.419, params=104_450, orth=1.2e-7, drift=7e-11),
            _row("oft_neumann", 0.946, sd=0.01, kept=0.914, cka=0.293, params=322_178, orth=4e-4, drift=7e-8),
            _row("head", 0.817, sd=0.01, kept=1.0, cka=1.0, params=770, orth=0.0, kind=ORTH_UNTOUCHED, drift=0.0,
                 spreads={"retention_kept": 0.0, "cka": 0.0})]


def test_cells_read_mean_and_sd_with_several_seeds():
    headers, body = CV.table_rows(_result(_rows()))
    goft = dict(zip(headers, body[0]))
    assert goft["accuracy (%)"] == "90.4 ± 0.2"
    assert goft["CKA to base"] == "0.6940 ± 0.0020"
    assert goft["skill kept (%)"] == "99.4 ± 0.2"
    assert "mean ± sd of 3 seeds" in goft["note"]
    one = [_row("goft", 0.904, n=1, kept=0.994)]
    single = dict(zip(headers, CV.table_rows(_result(one, seeds=(0,)))[1][0]))
    assert single["accuracy (%)"] == "90.4" and single["skill kept (%)"] == "99.4" and "±" not in single["note"]


def test_bars_carry_one_sd_error_bars():
    rows = _rows()
    figures = CV.compare_bar_figures(_result(rows))
    for name, scale in (("accuracy", 100), ("cka", 1), ("retention_kept", 100)):
        bar = figures[name].data[0]
        assert bar.error_y.visible
        assert list(bar.error_y.array) == pytest.approx([scale * r.sd(name) for r in rows])
        top = max(v + e for v, e in zip(bar.y, bar.error_y.array))
        assert figures[name].layout.yaxis.range[1] >= top  # the error bars fit
    assert figures["he_drift"].data[0].error_y.array is None  # log bars: no symmetric error bars
    single = CV.compare_bar_figures(_result([_row("goft", 0.9, n=1), _row("lora", 0.91, n=1)], seeds=(0,)))
    assert single["accuracy"].data[0].error_y.array is None


def test_summary_states_its_rule_and_which_gaps_it_supports():
    text = CV.summary_markdown(_result(_rows()))
    assert "mean ± sd over seeds 0, 1, 2" in text
    assert CV.SPREAD_RULE in text
    assert "Highest mean accuracy: **BOFT** (95.4 ± 0.8%)" in text
    supported = text.split("Its lead is supported over ")[1].split(".\n")[0].split("Within the spread")[0]
    within = text.split("Within the spread of it (not separated by these seeds): ")[1].split("\n")[0]
    # BOFT 95.4 ± 0.8 vs OFT (Neumann) 94.6 ± 1.0: 0.8 < 1.8, not separated; vs LoRA 91.2 ± 0.6: 4.2 > 1.4.
    assert "OFT (Neumann) (94.6 ± 1.0%)" in within and "OFT (Neumann)" not in supported
    for label in ("GOFT (90.4 ± 0.2%)", "qGOFT (91.7 ± 0.4%)", "LoRA (91.2 ± 0.6%)", "Head only (81.7 ± 1.0%)"):
        assert label in supported


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0.5, 1), b=st.floats(0.5, 1), sd_a=st.floats(0, 0.05), sd_b=st.floats(0, 0.05))
def test_a_gap_is_supported_exactly_when_the_rule_says(a, b, sd_a, sd_b):
    rows = [_row("boft", a, sd=sd_a), _row("lora", b, sd=sd_b)]
    result = _result(rows)
    text = CV.summary_markdown(result)
    assert CV.gap_supported(a, sd_a, b, sd_b) is (abs(a - b) > sd_a + sd_b)
    floor = CV._floor(result, "accuracy")  # an accuracy's sd: at least one held-out example
    supported = abs(a - b) > max(sd_a, floor) + max(sd_b, floor)
    assert ("Its lead is supported over" in text) is supported
    if a == b or (f"{100 * a:.1f}" == f"{100 * b:.1f}" and not supported):  # they read the same: tied
        assert "tied at the precision shown" in text and "Within the spread" not in text
    else:
        assert ("Within the spread of it" in text) is (not supported)
    assert CV.gap_supported(a, math.nan, b, sd_b) is None  # one run: no spread to judge


def test_what_each_method_wins_is_said_with_the_rows_numbers():
    text = CV.wins_markdown(_result(_rows()))
    goft = next(line for line in text.splitlines() if line.startswith("- **GOFT**"))
    assert ("most of the base's skill kept, 99.4 ± 0.2% with 21K trainable parameters, against LoRA's "
            "95.5 ± 0.6% with 333K (a gap the spread supports)") in goft
    assert "(next: qGOFT, 98.6 ± 0.4%: a gap the spread supports)" in goft
    assert "fewest trainable parameters, 21K, against LoRA's 333K" in goft
    assert "orthogonal up to rounding (deviation 6.6e-08 ± " in goft  # as the table writes it
    boft = next(line for line in text.splitlines() if line.startswith("- **BOFT**"))
    # BOFT 95.4 ± 0.8 leads OFT (Neumann) 94.6 ± 1.0 by less than the spread: no winner is named.
    assert "highest accuracy" not in boft and "orthogonal up to rounding" in boft
    undecided = next(line for line in text.splitlines() if line.startswith("- **No winner**"))
    assert ("highest accuracy: BOFT 95.4 ± 0.8%, OFT (Neumann) 94.6 ± 1.0% (not separated by the spread)"
            in undecided)
    assert "- **Head only** leaves the encoder untouched" in text and "770 trainable parameters" in text
    assert "First on none of these: qGOFT, LoRA, OFT (Neumann)." in text
    # The numbers come from the rows: change them and the sentence follows.
    rows = _rows()
    rows[2].retention_kept, rows[2].retention_kept_sd, rows[2].trainable_params = 0.999, 0.001, 5_000
    text = CV.wins_markdown(_result(rows))
    lora = next(line for line in text.splitlines() if line.startswith("- **LoRA**"))
    assert "most of the base's skill kept, 99.9 ± 0.1% with 5,000 trainable parameters" in lora
    assert "fewest trainable parameters, 5,000" in lora


def test_qgoft_less_orthogonal_than_lora_is_explained_only_where_it_is_so():
    text = CV.summary_markdown(_result(_rows()))
    note = text.split("**Less orthogonal than LoRA by this measure:**")[1].split("\n\n")[0]
    assert "qGOFT's (0.164 ± 0.004) orthogonality deviation is larger than LoRA's (0.032 ± 0.006)" in note
    rows = _rows() + [_row("qgoft_big_lambda", 0.91, orth=0.17)]
    assert "orthogonality deviations are larger" in CV.summary_markdown(_result(rows))
    assert "gaps the spread supports" in note
    for idea in ("perpendicular", "lengths are free", "compound through the levels", "scales the inputs",
                 "least-squares input operator"):
        assert idea in note
    rows = _rows()
    rows[1].orth_dev = 0.01  # now below LoRA's
    assert "Less orthogonal than LoRA" not in CV.summary_markdown(_result(rows))


def test_skill_kept_above_100_is_explained_with_its_spread():
    rows = _rows()
    rows[3].retention_kept = 1.004
    text = CV.summary_markdown(_result(rows))
    assert "Skill kept above 100% (BOFT 100.4 ± 0.8%)" in text and "noise around the base" in text
    assert "Head only 100.0" not in text  # exactly the base: not "above"


def test_describe_names_the_seeds():
    assert "seeds 0, 1, 2 (mean ± sd)" in CV.describe(_result(_rows()))
    assert "seed 4," in CV.describe(_result([_row("goft", 0.9, n=1)], seeds=(4,)))


def test_kept_figure_shows_the_spread_of_each_point():
    result = _result(_rows()[:2])
    result.curves = {"goft": {"step": [0, 60], "accuracy": [0.5, 0.9], "accuracy_sd": [0.0, 0.02],
                              "kept": [1.0, 0.7], "kept_sd": [0.0, 0.01], "loss": [0.7, 0.2]},
                     "qgoft": {"step": [0, 60], "accuracy": [0.5, 0.92], "accuracy_sd": [0.0, 0.01],
                               "kept": [1.0, 0.6], "kept_sd": [0.0, 0.01], "loss": [0.7, 0.2]}}
    fig = CV.kept_figure(result)
    goft = next(t for t in fig.data if t.name == "GOFT")
    assert list(goft.error_y.array) == pytest.approx([0.0, 2.0])
    assert "mean over seeds 0, 1, 2" in fig.layout.title.text


def test_an_accuracy_sd_counts_as_at_least_one_heldout_example():
    """Seeds that all score 100% (sd 0) do not make a 0.3-point gap on 180 examples look real."""
    from qgoft_core.viz.compare_views import gap_supported
    assert gap_supported(1.0, 0.0, 0.997, 0.0) is True  # the bare rule
    assert gap_supported(1.0, 0.0, 0.997, 0.0, floor=1 / 180) is False
    assert gap_supported(1.0, 0.0, 0.95, 0.01, floor=1 / 180) is True


def test_no_winner_is_named_between_numbers_that_read_the_same():
    """CKA 0.99999 and 0.99997 both read 1.0000: one run each (or a gap inside the spread) names no
    winner; a gap the spread supports is shown with the digits that tell them apart."""
    one = [_row("goft", 0.90, n=1, cka=0.99999, kept=0.95), _row("qgoft", 0.88, n=1, cka=0.99997, kept=0.97),
           _row("lora", 0.85, n=1, cka=0.5, kept=0.9)]
    text = CV.wins_markdown(_result(one, seeds=(0,)))
    assert "representation closest to the base," not in text
    assert ("representation closest to the base: GOFT 1.0000, qGOFT 1.0000, LoRA 0.5000 (one run each: no "
            "spread to rank them by)") in text
    # Several seeds, gap inside the spread: not separated either (SPREAD_RULE).
    multi = [_row("goft", 0.90, cka=0.99999, spreads={"cka": 0.001}), _row("qgoft", 0.88, cka=0.99997,
             spreads={"cka": 0.001}), _row("lora", 0.85, cka=0.5)]
    text = CV.wins_markdown(_result(multi))
    assert "representation closest to the base," not in text
    assert ("representation closest to the base: GOFT 1.0000 ± 0.0010, qGOFT 1.0000 ± 0.0010 (not separated "
            "by the spread)") in text
    # Several seeds, the spread supports the gap: the winner is named, with digits that show the gap.
    for row in multi[:2]:
        row.cka_sd = 1e-6
    text = CV.wins_markdown(_result(multi))
    assert ("representation closest to the base, 0.99999 ± 0.00000 (next: qGOFT, 0.99997 ± 0.00000: "
            "a gap the spread supports)") in text


def test_accuracies_that_read_the_same_lead_together():
    rows = [_row("oft_neumann", 0.94861, sd=0.005), _row("oft_exact", 0.94859, sd=0.005), _row("head", 0.8)]
    text = CV.summary_markdown(_result(rows))
    assert "Highest mean accuracy, tied at the precision shown: **OFT (Neumann)** (94.9 ± 0.5%) and " \
           "**OFT (exact)** (94.9 ± 0.5%)" in text
    assert "Their lead is supported over Head only" in text
    one = [_row("oft_neumann", 0.94861, n=1), _row("oft_exact", 0.94859, n=1), _row("head", 0.8, n=1)]
    text = CV.summary_markdown(_result(one, seeds=(0,)))
    assert "Highest in this run: **OFT (Neumann)** and **OFT (exact)** (tied at the precision shown)" in text


def test_curves_that_coincide_are_both_visible_and_named_at_their_true_values():
    """OFT (Neumann) and OFT (exact) lie on each other: the later one gets open markers and a dashed
    line over the earlier (nothing is moved), the subtitle names both, each hover gives both values."""
    result = _result([_row("oft_neumann", 0.949), _row("oft_exact", 0.949), _row("goft", 0.93)])
    same = {"step": [0, 30, 60], "accuracy": [0.504, 0.9, 0.949], "kept": [1.0, 0.5751, 0.2579]}
    result.curves = {"oft_neumann": dict(same),
                     "oft_exact": {**same, "kept": [1.0, 0.5750, 0.2578]},
                     "goft": {"step": [0, 30, 60], "accuracy": [0.504, 0.85, 0.93], "kept": [1.0, 0.9, 0.66]}}
    fig = CV.kept_figure(result)
    traces = {t.name: t for t in fig.data}
    neumann, exact, goft = traces["OFT (Neumann)"], traces["OFT (exact)"], traces["GOFT"]
    assert list(exact.x) == [1.0, 0.5750, 0.2578] and list(exact.y) == pytest.approx([50.4, 90.0, 94.9])  # true values
    assert exact.marker.symbol == "diamond-open" and exact.line.dash == "dash"
    assert neumann.marker.symbol is None and neumann.line.dash is None  # the one underneath keeps its look
    assert goft.marker.symbol is None and goft.text is None  # a curve that only shares step 0 is left alone
    assert "OFT (exact), open diamonds, dashed, lies on OFT (Neumann)" in fig.layout.title.text
    assert "%{text}" in exact.hovertemplate and "%{text}" in neumann.hovertemplate
    assert exact.text[1] == "OFT (Neumann) here: CKA 0.5751, accuracy 90.0%"
    assert neumann.text[2] == "OFT (exact) here: CKA 0.2578, accuracy 94.9%"
    # Curves that part are drawn as usual.
    result.curves["oft_exact"]["accuracy"] = [0.504, 0.8, 0.949]
    fig = CV.kept_figure(result)
    assert all(t.marker.symbol is None for t in fig.data) and "lies on" not in fig.layout.title.text


def _live_rows():
    """The walk's live single-seed comparison (sentiment, seed 0, 15 steps)."""
    return [_row("goft", 0.8125, n=1, kept=1.004, cka=0.9775, params=21_470, orth=6.27e-8, drift=7.18e-11),
            _row("qgoft", 0.8042, n=1, kept=1.002, cka=0.9955, params=83_570, orth=0.0392, drift=1.92e-5),
            _row("lora", 0.7208, n=1, kept=1.003, cka=0.9217, params=332_546, orth=0.0136, drift=1.7e-6,
                 kind=ORTH_LEAST_SQUARES)]


def _live_result(rows=None):
    result = _result(rows or _live_rows(), seeds=(0,))
    result.meta["heldout_examples"] = 240
    return result


def _clauses(text: str) -> list[str]:
    return [clause for line in text.splitlines() if line.startswith("- ") for clause in line.split("; ")]


def test_one_seed_names_no_winner_within_the_noise_it_states():
    """GOFT 81.2 vs qGOFT 80.4 with one seed, where the summary says gaps below ~4 points are seed
    noise: no "highest accuracy" winner; skill kept (100.4 vs 100.3, all "noise around the base") and
    CKA have no spread from one run, so they name no winner either."""
    result = _live_result()
    noise = CV.seed_noise_points(result, 0.8042)
    summary = CV.summary_markdown(result)
    assert f"differences below ~{noise:.0f} points are within seed noise" in summary
    text = CV.wins_markdown(result)
    for clause in _clauses(text):
        for contest in ("highest accuracy,", "most of the base's skill kept,", "representation closest to the base,"):
            assert contest not in clause, clause  # "<what>, <value>": a named winner
    undecided = next(line for line in text.splitlines() if line.startswith("- **No winner**"))
    assert (f"highest accuracy: GOFT 81.2%, qGOFT 80.4% (one run each, within the ~{noise:.0f}-point seed "
            "noise)") in undecided
    assert "most of the base's skill kept: GOFT 100.4%, LoRA 100.3%, qGOFT 100.2%" in undecided
    assert "representation closest to the base: qGOFT 0.9955, GOFT 0.9775, LoRA 0.9217" in undecided
    goft = next(line for line in text.splitlines() if line.startswith("- **GOFT**"))
    assert "fewest trainable parameters, 21K, against LoRA's 333K" in goft  # exact counts still rank
    # A gap beyond the noise is a win, judged in the same words.
    rows = _live_rows()
    rows[1].accuracy = 0.70
    result = _live_result(rows)
    noise = CV.seed_noise_points(result, 0.7208)  # at the new median
    text = CV.wins_markdown(result)
    goft = next(line for line in text.splitlines() if line.startswith("- **GOFT**"))
    assert (f"highest accuracy, 81.2% (next: LoRA, 72.1%: one run each, beyond the ~{noise:.0f}-point seed "
            "noise)") in goft
    assert f"differences below ~{noise:.0f} points" in CV.summary_markdown(result)


def test_a_method_is_named_once_in_a_clause():
    """LoRA as the runner-up is "next", not also "against LoRA's" (the walk read "against LoRA's
    100.3% with 333K (next: LoRA, 100.3%: one run each)")."""
    rows = _rows()
    rows[2].retention_kept, rows[2].retention_kept_sd = 0.99, 0.001  # LoRA second in skill kept
    rows[0].retention_kept_sd = 0.001
    for result in (_result(rows), _live_result()):
        for clause in _clauses(CV.wins_markdown(result)):
            if "No winner" not in clause:  # that bullet lists each contest's rows, once each
                assert clause.split("**: ", 1)[-1].count("LoRA") <= 1, clause
    goft = next(line for line in CV.wins_markdown(_result(rows)).splitlines() if line.startswith("- **GOFT**"))
    assert ("most of the base's skill kept, 99.4 ± 0.1% with 21K trainable parameters (next: LoRA, 99.0 ± 0.1%: "
            "a gap the spread supports)") in goft


def test_a_lead_every_method_is_within_the_spread_of_is_no_win():
    """The topic task: GOFT 100.0 ± 0.0 ahead of eight methods all within the spread: not a win."""
    rows = [_row("goft", 1.0, sd=0.0), _row("qgoft", 0.998, sd=0.003), _row("lora", 0.991, sd=0.009),
            _row("boft", 0.994, sd=0.006), _row("head", 0.992, sd=0.003, kind=ORTH_UNTOUCHED)]
    result = _result(rows)
    result.meta["heldout_examples"] = 180
    text = CV.wins_markdown(result)
    assert not any("highest accuracy," in clause for clause in _clauses(text))
    undecided = next(line for line in text.splitlines() if line.startswith("- **No winner**"))
    assert ("highest accuracy: GOFT 100.0 ± 0.0%, qGOFT 99.8 ± 0.3%, BOFT 99.4 ± 0.6%, Head only 99.2 ± 0.3%, "
            "LoRA 99.1 ± 0.9% (not separated by the spread)") in undecided


def _bar_texts(result) -> dict[str, list[str]]:
    return {name: list(fig.data[0].text) for name, fig in CV.compare_bar_figures(result).items()}


def test_bars_table_and_summary_write_each_number_the_same_way():
    """The walk read accuracy bars 81.25 / 80.42 / 72.08 and s/step 0.4907 beside a table of 81.2 /
    80.4 / 72.1 and 0.491: every bar label is the table's cell (the mean, with several seeds)."""
    for result in (_live_result(), _result(_rows())):
        for row in result.rows:
            row.sec_per_step = 0.4907
        headers, body = CV.table_rows(result)
        header = dict(CV.COLUMNS)
        texts = _bar_texts(result)
        for name, labels in texts.items():
            for row, label in zip(result.rows, labels):
                assert label == CV.format_value(name, getattr(row, name)), (name, label)
                cell = dict(zip(headers, body[result.rows.index(row)]))[header[name]]
                assert cell.split(" ± ")[0] == label, (name, cell, label)
        live = CV.compare_bar_figures(result)["accuracy"].data[0]
        assert "%{text}" in live.hovertemplate  # the hover says it as the label does
    assert _bar_texts(_live_result())["accuracy"] == ["81.2", "80.4", "72.1"]
    timed = _live_result()
    for row, sec in zip(timed.rows, (0.4907, 0.5513, 0.4487)):
        row.sec_per_step = sec
    assert _bar_texts(timed)["sec_per_step"] == ["0.491", "0.551", "0.449"]
    assert [cells[3] for cells in CV.table_rows(timed)[1]] == ["0.491", "0.551", "0.449"]
    summary = CV.summary_markdown(_live_result())
    assert "81.25" not in summary and "**GOFT** (81.2%" in summary
    cka = CV.wins_markdown(_live_result())
    assert "qGOFT 0.9955" in cka and CV.table_rows(_live_result())[1][1][6] == "0.9955"  # CKA as in the table


def test_orthogonality_and_drift_cells_read_mean_and_sd_as_the_summary_does():
    """The walk read "0.17 ± 0.003" in the summary beside a table cell of 1.67e-01 with no sd."""
    rows = _rows()
    rows[1].orth_dev, rows[1].orth_dev_sd, rows[1].he_drift_sd = 0.167, 0.003, 2e-6
    headers, body = CV.table_rows(_result(rows))
    qgoft = dict(zip(headers, body[1]))
    assert qgoft["orth. deviation"] == "0.167 ± 0.003"
    assert qgoft["energy drift"] == "7e-05 ± 2e-06"
    note = CV.summary_markdown(_result(rows)).split("**Less orthogonal than LoRA by this measure:**")[1]
    lora = dict(zip(headers, body[2]))
    assert f"qGOFT's ({qgoft['orth. deviation']})" in note and f"LoRA's ({lora['orth. deviation']})" in note
    single = dict(zip(*[CV.table_rows(_live_result())[0], CV.table_rows(_live_result())[1][1]]))
    assert single["orth. deviation"] == "0.0392" and "±" not in single["energy drift"]
    assert "qGOFT's (0.0392)" in CV.summary_markdown(_live_result())


def test_small_multiples_hide_bar_labels_too_small_to_read():
    """Nine bars: plotly shrank the s/step labels to 1-8 px; a label either reads at >= 10 px or is left to
    the hover and the table."""
    from demos.comparisons import load_precomputed
    figures = CV.compare_bar_figures(load_precomputed("sentiment"))
    assert figures
    for name, fig in figures.items():
        assert fig.layout.uniformtext.minsize >= 10 and fig.layout.uniformtext.mode == "hide", name


def test_a_gap_verdict_is_not_said_twice_in_a_row():
    """Walk: '(one run each, beyond the ~4-point seed noise)' twice in one clause (against LoRA, then next)."""
    rows = _live_rows()
    for row, accuracy in zip(rows, (0.90, 0.80, 0.70)):  # GOFT, qGOFT, LoRA: GOFT's lead beyond the noise
        row.accuracy = accuracy
    text = CV.wins_markdown(_live_result(rows))
    clause = next(c for c in _clauses(text) if "highest accuracy" in c)
    assert "against LoRA's 70.0%" in clause and "next: qGOFT" in clause  # judged against both
    assert clause.count("seed noise") == 1, clause
