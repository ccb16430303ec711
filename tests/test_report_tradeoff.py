"""Report, the trade-off figure: binary F1 against 9-class macro F1, the fixed-weight search trials'
front and each arm's confirmation against it. The dominance rule on its own (ties included, checked
against optuna's own Pareto front), the record and its sentence for a fake study whose points are
known by construction, the figure left out with a note when a piece is missing, and the page in
headless Chromium."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from helpers.fake_study import BASE, GRADIENT_BASE, SEEDS, K, add_arm_study, add_confirm_study, report_of
from helpers.page import open_report, rendered
from scipy import stats

from cmi_model.weighting import BASELINE_ARM, SCHEMES
from study import report
from study.report import sentences
from study.report import tradeoff_figures as tf
from study.report.page import render_html

optuna.logging.set_verbosity(optuna.logging.WARNING)

# ----------------------------------------------------------------------------- a study whose points are known

N_FIXED = (
    5  # complete fixed trials: trial i at binary 0.805 − 0.03 i, macro 0.605 + 0.05 i (all on the front)
)
# Confirmed arm → (mean score before the seed/fold offsets, binary F1 − score); offsets add 0.003 on average.
CONFIRMED = {
    "fixed": (0.70, 0.01),  # (0.713, 0.693): inside, fixed trial 2 at (0.745, 0.705) dominates it
    "uncertainty": (0.75, 0.05),  # (0.803, 0.703): between trials 0 and 2, beyond the front
    "direct": (0.70, 0.0),  # (0.703, 0.703): inside, trial 2 again
    "upgrad": (0.75, 0.05),  # beyond
    "pcgrad": (0.70, 0.0),  # inside
}


def _search_split(arm: str, i: int, f: int, s: float) -> tuple[float, float]:
    d = 0.1 - 0.04 * i  # later trials trade binary F1 for macro F1
    return s + d, s - d


def _confirm_scores(arm: str, seed: int) -> list[float]:
    return [CONFIRMED[arm][0] + 0.002 * seed + 0.001 * f for f in range(K)]


def _confirm_split(arm: str, seed: int, f: int, s: float) -> tuple[float, float]:
    d = CONFIRMED[arm][1]
    return s + d, s - d


def tradeoff_storage(name: str, arms=("fixed", "uncertainty", "direct"), *, fixed=None, confirm=True):
    """Search studies of ``arms`` (fixed: ``fixed`` overrides its states and split) and their confirmation."""
    storage = optuna.storages.InMemoryStorage()
    for i, arm in enumerate(arms):
        kw = dict(states=("COMPLETE",) * N_FIXED, split=_search_split)
        if arm == BASELINE_ARM:
            kw |= fixed or {}
        add_arm_study(storage, name, arm, kw.pop("states"), seed=i, **kw)
    if confirm:
        add_confirm_study(storage, name, arms=arms, scores=_confirm_scores, split=_confirm_split)
    return storage


@pytest.fixture
def gradient_arms(monkeypatch):
    for arm, base in GRADIENT_BASE.items():
        monkeypatch.setitem(BASE, arm, base)


# ----------------------------------------------------------------------------- dominance


FRONT = [(0.8, 0.6), (0.7, 0.7), (0.6, 0.8)]


def test_the_front_keeps_what_nothing_dominates():
    points = [*FRONT, (0.65, 0.65), (0.7, 0.7), (0.6, 0.75), (0.5, 0.5)]
    # the duplicate of a front point stays on it; (0.6, 0.75) ties on binary F1 and loses on macro F1
    assert tf.pareto_mask(points).tolist() == [True, True, True, False, True, False, False]
    assert tf.pareto_mask(np.empty((0, 2))).tolist() == []
    assert tf.pareto_mask([(0.3, 0.4)]).tolist() == [True]


@pytest.mark.parametrize(
    ("point", "where"),
    [
        ((0.75, 0.75), "beyond"),  # better than every front point on one half at least
        ((0.9, 0.1), "beyond"),  # past the last corner: no trial has its binary F1
        ((0.8, 0.61), "beyond"),  # ties a corner on binary F1, better on macro F1
        ((0.7, 0.7), "on"),  # equal to a trial
        ((0.7 + 1e-12, 0.7 - 1e-12), "on"),  # equal up to the last bits of a mean
        ((0.65, 0.65), "inside"),  # (0.7, 0.7) is better on both
        ((0.7, 0.69), "inside"),  # ties on binary F1, worse on macro F1
        ((0.6, 0.6), "inside"),
    ],
)
def test_where_a_point_lands(point, where):
    assert tf.position(point, FRONT) == where
    dominated = tf.dominators(point, FRONT)
    assert (len(dominated) > 0) == (where == "inside")
    for i in dominated:  # every dominator is at least as good on both and better on one
        assert all(a >= b for a, b in zip(FRONT[i], point, strict=True)) and FRONT[i] != point


def test_the_front_agrees_with_optuna_and_brute_force():
    from optuna.study._multi_objective import _is_pareto_front  # private: the cross-check only

    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 40):
        pts = np.round(rng.random((n, 2)), 2)  # rounded: ties and duplicates happen
        mine = tf.pareto_mask(pts)
        assert mine.tolist() == _is_pareto_front(-pts, assume_unique_lexsorted=False).tolist()
        brute = [not any((q >= p).all() and (q > p).any() for q in pts) for p in pts]
        assert mine.tolist() == brute


def test_t_interval_is_scipys_and_degrades():
    x = np.array([0.71, 0.74, 0.69, 0.73, 0.72])
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    assert tf.t_interval(x) == pytest.approx((x.mean() - half, x.mean() + half))
    low, high = tf.t_interval([0.7, 0.7, 0.7])
    assert low == high == pytest.approx(0.7)  # no spread: no width
    assert all(math.isnan(v) for v in tf.t_interval([0.7]))  # one value: no interval


# ----------------------------------------------------------------------------- the record and its sentence


def test_record_places_each_confirmed_arm_and_the_sentence_names_them():
    rep = report_of(tradeoff_storage("tr"), "tr")
    info = tf.tradeoff_info(rep.studies)
    assert info is not None and info.baseline == BASELINE_ARM
    assert [t.number for t in info.trials] == list(range(N_FIXED))
    for t in info.trials:
        assert (t.binary_f1, t.macro_f1) == pytest.approx((0.805 - 0.03 * t.number, 0.605 + 0.05 * t.number))
    assert [t.number for t in info.front] == [4, 3, 2, 1, 0]  # every trial trades one half for the other
    assert [a.arm for a in info.arms] == ["fixed", "uncertainty", "direct"]  # family order
    assert {a.arm: a.position for a in info.arms} == {
        "fixed": "inside",
        "uncertainty": "beyond",
        "direct": "inside",
    }
    assert {a.arm: a.dominated_by for a in info.arms} == {"fixed": 2, "uncertainty": None, "direct": 2}
    # the confirmation mean and interval over the arm's seeds × folds, as the report pairs them
    scores = rep.studies.confirm.scores
    unc = next(a for a in info.arms if a.arm == "uncertainty")
    rows = scores[scores["arm"] == "uncertainty"]
    assert unc.n == len(SEEDS) * K == len(rows)
    assert (unc.binary_f1, unc.macro_f1) == pytest.approx((0.803, 0.703))
    assert unc.binary_interval == pytest.approx(
        stats.t.interval(0.95, unc.n - 1, loc=rows["binary_f1"].mean(), scale=stats.sem(rows["binary_f1"]))
    )
    assert unc.family == SCHEMES["uncertainty"].family
    said = sentences.tradeoff_text(info)
    assert said.startswith("Beyond the front of the 5 complete fixed search trials")
    assert "at least as good on both binary F1 and macro F1): uncertainty;" in said
    assert said.endswith(
        "inside it (a fixed trial is at least as good on both and better on one): fixed, direct."
    )


def test_no_arm_beyond_is_said_so():
    rep = report_of(tradeoff_storage("none", arms=("fixed", "direct")), "none")
    info = tf.tradeoff_info(rep.studies)
    assert info.placed("beyond") == [] and info.placed("inside") == ["fixed", "direct"]
    said = sentences.tradeoff_text(info)
    assert said.startswith("No confirmed arm lands beyond the front of the 5 complete fixed search trials;")


def test_a_confirmation_on_a_trial_point_is_on_the_front(monkeypatch):
    monkeypatch.setitem(CONFIRMED, "direct", (0.722, 0.02))  # mean (0.745, 0.705): fixed trial 2 exactly
    info = tf.tradeoff_info(report_of(tradeoff_storage("tie"), "tie").studies)
    direct = next(a for a in info.arms if a.arm == "direct")
    assert (direct.binary_f1, direct.macro_f1) == pytest.approx(
        (info.trials[2].binary_f1, info.trials[2].macro_f1)
    )
    assert info.placed("on") == ["direct"] and direct.dominated_by is None
    said = sentences.tradeoff_text(info)
    assert "; on it (equal to a fixed trial): direct; inside it (" in said and said.endswith("): fixed.")


def test_figure_draws_trials_front_and_arms():
    rep = report_of(tradeoff_storage("fig"), "fig")
    info = tf.tradeoff_info(rep.studies)
    fig = tf.fig_tradeoff(info)
    trials, front, *arms = fig.data
    assert list(trials.x) == pytest.approx([t.binary_f1 for t in info.trials])
    assert front.line.shape == "vh"
    # the staircase's corners are the front, run out to the left edge and down to the bottom edge
    assert list(front.x[1:-1]) == pytest.approx([t.binary_f1 for t in info.front])
    assert list(front.y[1:-1]) == pytest.approx([t.macro_f1 for t in info.front])
    assert front.x[0] == fig.layout.xaxis.range[0] and front.y[-1] == fig.layout.yaxis.range[0]
    assert [t.name for t in arms] == [a.arm for a in info.arms]
    assert [t.legendgroup for t in arms] == [SCHEMES[a.arm].family for a in info.arms]
    unc = arms[1]
    assert unc.error_x.array[0] == pytest.approx(info.arms[1].binary_interval[1] - info.arms[1].binary_f1)
    assert "beyond the fixed front" in unc.text[0] and "dominated by trial #2" in arms[2].text[0]
    assert (
        fig.layout.xaxis.title.text.startswith("binary F1")
        and fig.layout.yaxis.title.text == "9-class macro F1"
    )


# ----------------------------------------------------------------------------- left out, with a note


@pytest.mark.parametrize(
    ("case", "note"),
    [
        ("no fixed study", "Not drawn: no fixed search study"),
        ("no complete fixed trial", "Not drawn: no complete fixed search trial yet"),
        ("no F1 in the search", "Not drawn: none of the 5 complete fixed search trials recorded binary F1"),
        ("no confirmation", "Not drawn: no arm has a finished confirmation yet"),
    ],
)
def test_left_out_with_a_note(case, note):
    arms = ("uncertainty", "direct") if case == "no fixed study" else ("fixed", "uncertainty")
    fixed = {
        "no complete fixed trial": {"states": ("PRUNED", "FAIL", "RUNNING")},
        "no F1 in the search": {"split": None},  # older studies: NaN
    }.get(case)
    rep = report_of(tradeoff_storage(case, arms, fixed=fixed, confirm=case != "no confirmation"), case)
    assert tf.tradeoff_info(rep.studies) is None and tf.fig_tradeoff(None) is None
    assert sentences.tradeoff_note(rep.studies).startswith(note)
    text, figs = render_html(rep)
    assert "tradeoff" not in [k for k, _ in figs]
    assert f'<p class="missing">{note}' in text and 'class="tradeoff"' not in text


def test_left_out_when_the_confirmation_has_no_f1():
    storage = tradeoff_storage("nof1", confirm=False)
    add_confirm_study(storage, "nof1", arms=("fixed", "uncertainty"), scores=_confirm_scores, split=None)
    rep = report_of(storage, "nof1")
    assert tf.tradeoff_info(rep.studies) is None
    assert sentences.tradeoff_note(rep.studies).startswith(
        "Not drawn: the confirmation runs recorded no binary F1"
    )


def test_an_arm_without_f1_is_named_not_placed():
    storage = tradeoff_storage("part", arms=("fixed", "uncertainty", "direct"), confirm=False)
    add_confirm_study(
        storage,
        "part",
        arms=("fixed", "uncertainty", "direct"),
        scores=_confirm_scores,
        split=lambda arm, seed, f, s: (
            (math.nan, math.nan) if arm == "direct" else _confirm_split(arm, seed, f, s)
        ),
    )
    info = tf.tradeoff_info(report_of(storage, "part").studies)
    assert [a.arm for a in info.arms] == ["fixed", "uncertainty"] and info.unplaced == ("direct",)
    assert sentences.tradeoff_text(info).endswith("; not placed (no binary and macro F1 recorded): direct.")


# ----------------------------------------------------------------------------- the page in Chromium


@pytest.mark.slow
def test_tradeoff_and_families_render_in_chromium(tmp_path, browser, gradient_arms):
    arms = ("fixed", "uncertainty", "direct", "upgrad", "pcgrad")
    storage = tradeoff_storage("page", arms)
    out = report.write_report(storage, "page", tmp_path / "page.html", dashboard=False)
    open_report(browser, out)
    n = int(browser.find_element("css selector", "body").get_attribute("data-figures"))
    assert rendered(browser) == n
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    # the trade-off figure, drawn: the trials, the front and one marker per confirmed arm in the legend
    fig = browser.find_element("css selector", "[id*='-tradeoff']")
    assert fig.find_elements("css selector", "svg.main-svg")
    legend = [t.text for t in fig.find_elements("css selector", ".legendtext")]
    assert legend[:2] == ["fixed search trials (mean over folds)", "fixed front (5 of 5 trials)"]
    # the arms under their family's heading, families in FAMILIES order
    assert legend[2:] == [
        "fixed",
        "fixed",
        "loss-level",
        "uncertainty",
        "direct",
        "gradient-level",
        "upgrad",
        "pcgrad",
    ]
    said = browser.find_element("css selector", "p.tradeoff").text
    assert ": uncertainty, upgrad;" in said and said.endswith(": fixed, direct, pcgrad.")
    # the arms table grouped by family, in FAMILIES order, each heading over its own arms
    groups = browser.find_elements("css selector", "table.arms tbody.family")
    assert [g.find_element("css selector", "tr.family th").text for g in groups] == [
        "fixed (1 arm)",
        "loss-level (2 arms)",
        "gradient-level (2 arms)",
    ]
    shown = [
        [
            r.find_element("css selector", "td").text.strip("■ ")
            for r in g.find_elements("css selector", "tr:not(.family)")
        ]
        for g in groups
    ]
    assert shown == [["fixed"], ["uncertainty", "direct"], ["upgrad", "pcgrad"]]
