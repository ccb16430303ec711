"""What tuning buys: the expected best after n trials (Dodge et al. 2019), its record and figure, and
the trials one arm needed to reach another's score — on searches whose trial values the tests set."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from study.report.budget_figures import budget_curves, expected_best, fig_budget, trials_to_match


def test_expected_best_is_the_average_best_over_every_subset():
    rng = np.random.default_rng(0)
    values = np.r_[rng.normal(0.6, 0.05, 6), 0.6, 0.6]  # ties included
    curve = expected_best(values)
    for n in range(1, len(values) + 1):
        brute = np.mean([max(c) for c in itertools.combinations(values, n)])
        assert curve[n - 1] == pytest.approx(brute, rel=1e-12)
    assert curve[0] == pytest.approx(values.mean()) and curve[-1] == values.max()
    assert np.all(np.diff(curve) >= -1e-15)
    big = expected_best(rng.normal(size=500))  # no overflow in the binomial weights
    assert np.all(np.isfinite(big)) and big[-1] == pytest.approx(big.max())
    with pytest.raises(ValueError):
        expected_best([0.5, np.nan])


def _search(values, states=None, seconds=10.0):
    """An arm's trials: numbers 0.., the given values and states, each lasting `seconds`."""
    states = states or ["COMPLETE"] * len(values)
    return SimpleNamespace(
        trials=pd.DataFrame(
            {
                "number": range(len(values)),
                "state": states,
                "value": values,
                "duration_s": seconds,
            }
        )
    )


def test_budget_record_bands_over_outer_folds_and_compute_per_completed_trial():
    searches = {
        1: {"fixed": _search([0.60, 0.70, 0.65, np.nan], ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED"])},
        2: {"fixed": _search([0.62, 0.66, 0.64, 0.68], seconds=5.0)},
    }
    curves = budget_curves(searches)
    one = curves[curves["outer_fold"] == 1]
    assert one["n"].tolist() == [1, 2, 3]  # the pruned trial is no draw ...
    assert one["seconds"].tolist() == pytest.approx([40 / 3, 80 / 3, 40.0])  # ... but its time is spent
    assert one["expected_best"].tolist() == pytest.approx(expected_best([0.60, 0.70, 0.65]).tolist())
    assert set(curves["baseline"].round(6)) == {0.60, 0.62}  # trial 0, the enqueued baseline
    fig = fig_budget(curves)
    band, line, base = fig.data[:3]
    assert list(line.x) == [1, 2, 3]  # up to the shortest search's completed trials
    two = expected_best([0.62, 0.66, 0.64, 0.68])[:3]
    assert list(line.y) == pytest.approx(((expected_best([0.60, 0.70, 0.65]) + two) / 2).tolist())
    assert max(band.y) == pytest.approx(max(expected_best([0.60, 0.70, 0.65])[-1], two[-1]))
    assert base.x == (1,) and base.y[0] == pytest.approx(0.61)
    trials, compute = (b.args[0]["x"] for b in fig.layout.updatemenus[0].buttons)
    assert [len(x) for x in trials] == [len(x) for x in compute] == [len(t.x) for t in fig.data]
    assert fig_budget(budget_curves({1: {}})) is None


def test_trials_to_match_in_each_search():
    searches = {
        1: {"fixed": _search([0.60, 0.64, 0.70, 0.66]), "uncertainty": _search([0.65, 0.62, 0.63, 0.61])},
        2: {"fixed": _search([0.50, 0.55, 0.52, 0.51]), "uncertainty": _search([0.60, 0.61, 0.62, 0.63])},
    }
    curves = budget_curves(searches)
    fixed = {k: expected_best([v for v in s["fixed"].trials["value"]]) for k, s in searches.items()}
    m = trials_to_match(curves, "fixed", "uncertainty", "untuned")
    # outer fold 1: uncertainty's baseline 0.65 — fixed's expected best passes it at the first n that does
    assert m.needed[0] == int(np.argmax(fixed[1] >= 0.65)) + 1
    assert m.needed[1] is None and m.budgets == (4, 4)  # outer fold 2: fixed never reaches 0.60
    tuned = trials_to_match(curves, "uncertainty", "fixed", "tuned")
    assert tuned.needed == (None, 1)  # fold 1: 0.65 < 0.70; fold 2: every uncertainty trial beats 0.55


def test_disagreement_is_said_only_when_the_held_out_verdict_takes_the_other_side():
    from study.report.sentences import disagreement_text

    searches = {1: {"fixed": _search([0.60, 0.62]), "uncertainty": _search([0.61, 0.66])}}
    curves = budget_curves(searches)

    def verdict(said):
        return SimpleNamespace(
            cmp=SimpleNamespace(a="fixed", b="uncertainty", primary=SimpleNamespace(verdict=said))
        )

    text = disagreement_text(curves, [verdict("a better")], "uncertainty")
    assert "favour uncertainty, the held-out subjects fixed" in text
    for agrees in ("b better", "practically equivalent", "inconclusive"):
        assert disagreement_text(curves, [verdict(agrees)], "uncertainty") == ""
    assert disagreement_text(curves, [], "uncertainty") == ""


def test_the_report_and_the_note_show_what_tuning_buys():
    import optuna
    from helpers.fake_study import full_storage, report_of

    from study.report.dashboard import dashboard_note
    from study.report.page import render_html

    storage = full_storage(optuna.storages.InMemoryStorage(), "tb")
    rep = report_of(storage, "tb")
    text, figures = render_html(rep)
    assert "What tuning buys</h2>" in text and "budget" in dict(figures)
    note = dashboard_note(rep)
    for arm in ("uncertainty", "direct"):
        assert f"to reach {arm}&#39;s untuned score" in text and f"to reach {arm}'s untuned score" in note
        assert f"{arm}&#39;s search" in text and f"{arm}'s search" in note
    alone = full_storage(optuna.storages.InMemoryStorage(), "solo", arms=("fixed",), confirm=False)
    text, _ = render_html(report_of(alone, "solo"))
    assert "the trials-to-match sentences need fixed and another searched arm" in text
