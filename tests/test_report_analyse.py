"""Report, second stage: the studies analysed (:mod:`study.report.analyse`): the arms paired and
compared, Holm's adjustment, what each verdict states and how the headline and the
optuna-dashboard note say it, held-out subjects, and learned weights that never moved."""

from __future__ import annotations

import optuna
import pytest
from helpers.fake_study import (
    BASE,
    HOLDOUT,
    SEEDS,
    K,
    add_arm_study,
    add_confirm_study,
    confirmed,
    noisy_scores,
    report_of,
)
from helpers.page import headline_html
from optuna.trial import TrialState, create_trial

from study import records
from study.report import analyse, studies
from study.report.dashboard import dashboard_note
from study.report.page import render_html
from study.stats import holm

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ----------------------------------------------------------------------------- comparisons


def test_fallback_to_best_trials_is_flagged_selection_biased():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "nc", "fixed")
    add_arm_study(storage, "nc", "uncertainty")
    rep = report_of(storage, "nc")
    (cmp,) = rep.comparisons
    assert cmp.source == "search" and cmp.selection_biased and "SELECTION-BIASED" in cmp.note
    fixed_best, unc_best = rep.studies.arms["fixed"].best, rep.studies.arms["uncertainty"].best
    assert cmp.pairs["a"].tolist() == pytest.approx(fixed_best.fold_scores)
    assert cmp.pairs["b"].tolist() == pytest.approx(unc_best.fold_scores)
    assert cmp.comparison.n == K and cmp.comparison.mean_diff == pytest.approx(0.01)
    html, _ = render_html(rep)
    assert "selection-biased" in html.lower()


def test_arms_on_different_splits_are_not_paired():
    storage = optuna.storages.InMemoryStorage()
    study = add_arm_study(storage, "ds", "fixed")
    records.write_study(study, records.read_arm_study(study).model_copy(update={"seed": 1}))
    add_arm_study(storage, "ds", "uncertainty")
    rep = report_of(storage, "ds")
    assert rep.comparisons[0].comparison is None and "different fold splits" in rep.comparisons[0].note
    assert any("differ in seed" in w for w in rep.warnings)


def test_partial_confirmation_falls_back_per_comparison():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "pc", "fixed")
    add_arm_study(storage, "pc", "uncertainty")
    add_confirm_study(storage, "pc", arms=("fixed",))
    rep = report_of(storage, "pc")
    (cmp,) = rep.comparisons
    assert cmp.source == "search" and cmp.selection_biased


def test_several_comparisons_are_holm_adjusted():
    rep = confirmed("holm", arms=("fixed", "uncertainty", "direct"))
    raw = [c.primary.p_value for c in rep.comparisons]  # the primary: about new subjects
    assert all(c.about_new_subjects for c in rep.comparisons)
    assert len(raw) == 2
    assert [c.p_adjusted for c in rep.comparisons] == pytest.approx(holm(raw))
    assert all(c.n_adjusted == 2 for c in rep.comparisons)
    assert rep.holm == (2, "fixed")  # the family: its size and its common baseline
    page = headline_html(rep)
    assert "The 2 comparisons against fixed are decided together" in page
    assert "made at its Holm-adjusted level" in page
    assert page.count("; Holm-adjusted for 2 comparisons: ") == 2  # beside each raw p
    assert "Holm-adjusted" in dashboard_note(rep)


def test_three_comparisons_against_fixed():
    BASE["other"] = 0.705  # a fourth arm, known only to the confirmation study
    try:
        rep = confirmed("holm3", arms=("fixed", "uncertainty", "direct", "other"))
    finally:
        del BASE["other"]
    assert [(c.a, c.b) for c in rep.comparisons] == [("fixed", b) for b in ("uncertainty", "direct", "other")]
    raw = [c.primary.p_value for c in rep.comparisons]  # the primary: about new subjects
    assert all(c.about_new_subjects for c in rep.comparisons)
    assert [c.p_adjusted for c in rep.comparisons] == pytest.approx(holm(raw))
    assert "The 3 comparisons against fixed are decided together" in headline_html(rep)


def test_one_comparison_is_not_adjusted():
    rep = confirmed("one")
    (cmp,) = rep.comparisons
    assert cmp.p_adjusted is None and cmp.n_adjusted == 1 and rep.holm is None
    text, _ = render_html(rep)
    assert "Holm" not in text
    assert "Holm" not in dashboard_note(rep)


def test_too_few_paired_scores_give_no_interval():
    rep = confirmed("few", seeds=(0,), n_folds=2)
    (cmp,) = rep.comparisons
    assert cmp.source == "confirmation" and cmp.comparison is None and cmp.too_few and len(cmp.pairs) == 2
    assert len(cmp.pairs) < analyse.MIN_PAIRS
    page = headline_html(rep)
    assert "too few paired scores for a verdict" in page
    assert "interval [" not in page and "Only 2 paired scores" in page
    assert "too few paired scores for a verdict" in dashboard_note(rep)


# ----------------------------------------------------------------------------- what each verdict states


def test_inconclusive_states_what_more_seeds_would_give():
    """A plan at stated effects, never at the observed difference (the observed-power trap)."""
    rep = confirmed("more", scores=noisy_scores(0.012, 0.01))
    (v,) = rep.verdicts
    c = v.cmp.subjects
    assert v.cmp.about_new_subjects and v.cmp.primary is c and c.verdict == "inconclusive"
    assert [(p.verdict, p.effect) for p in v.cmp.plan] == [("better", 0.02), ("practically equivalent", 0.0)]
    assert v.seeds_used == len(SEEDS)
    page = headline_html(rep).replace("&#39;", "'")
    # the difference and its interval for new subjects lead, then the verdict
    lead = (
        f"uncertainty − fixed = {c.mean_diff:+.4f}, 95% interval [{c.ci_low:+.4f}, {c.ci_high:+.4f}] "
        "for new subjects: inconclusive (rope ±0.01)"
    )
    assert lead in page
    better, equivalent = v.cmp.plan
    assert (
        f"Not enough evidence at rope ±0.01. What more confirm seeds would give: {better.note}; {equivalent.note}."
        in page
    )
    assert "'better' if the true difference is ±0.02" in better.note
    assert "'practically equivalent' if the true difference is 0" in equivalent.note
    assert f"On these {len(HOLDOUT)} held-out subjects only (fold-level corrected test" in page
    assert better.note in dashboard_note(rep)


def test_without_per_subject_scores_the_fold_level_states_its_smallest_detectable_difference():
    rep = confirmed("mde", scores=noisy_scores(0.006, 0.05), holdout=())
    (v,) = rep.verdicts
    c = v.cmp.comparison
    assert not v.cmp.about_new_subjects and v.cmp.primary is c and c.verdict == "inconclusive"
    assert f"the study could not detect differences smaller than {c.mde:.4f}" in headline_html(rep)


def test_no_difference_and_little_noise_is_practically_equivalent():
    """The verdict can say "equivalent": here every subject's difference is within ±0.001."""
    rep = confirmed("same-scores", scores=noisy_scores(0.0, 0.0005))
    (v,) = rep.verdicts
    assert v.cmp.subjects.verdict == "practically equivalent"
    html = headline_html(rep)
    assert "for new subjects: practically equivalent" in html
    # Two one-sided tests: the sentence names the 90% interval that lies inside the rope.
    lo, hi = v.cmp.subjects.equivalence_interval
    assert -0.01 < lo < v.cmp.subjects.mean_diff < hi < 0.01
    assert f"the 90% interval [{lo:+.4f}, {hi:+.4f}] lies inside ±0.01 (two one-sided tests" in html


def test_verdicts_are_those_of_the_comparisons_and_movements():
    rep = confirmed("same", arms=("fixed", "uncertainty", "direct"))
    assert [v.cmp for v in rep.verdicts] == list(rep.comparisons)
    again = analyse.verdicts(rep.studies, list(rep.comparisons), rep.movements)
    assert tuple(again) == rep.verdicts  # analyse only gathers; the functions stand alone
    assert studies.weight_movement(rep.studies) == rep.movements
    assert (rep.verdicts[0].a_label, rep.verdicts[0].b_label) == (
        analyse.label("fixed"),
        analyse.label("uncertainty"),
    )


def test_held_out_subjects_are_named():
    rep = confirmed("held")
    (v,) = rep.verdicts
    assert v.subjects_kind == "holdout" and v.subjects == sorted(HOLDOUT)
    page = headline_html(rep)
    assert (
        f"A verdict about new people: the population the {len(HOLDOUT)} held-out subjects were drawn from"
        in page
    )
    assert "<details" in page and all(s in page for s in HOLDOUT)
    assert not any("share subjects" in w for w in rep.warnings)


def test_no_holdout_warns_that_selection_and_confirmation_share_subjects():
    rep = confirmed("shared", holdout=())
    (v,) = rep.verdicts
    assert v.subjects_kind == "shared"
    (warning,) = [w for w in rep.warnings if "share subjects" in w]
    assert "--holdout 0" in warning and "optimistic for the arm with more tuned dimensions" in warning
    assert "fixed: 6, uncertainty: 5" in warning
    page = headline_html(rep)
    assert "selection and confirmation share subjects" in page and "no subjects were held out" in page


@pytest.mark.parametrize(
    ("rule", "sentence"),
    [
        ("last_epoch", "No score looked at its own validation fold: each fold's model is its last epoch."),
        (
            "inner",
            "No score looked at its own validation fold: epoch chosen on inner stop subjects, "
            "never the validation subjects.",
        ),
        (None, "did not record how the model was chosen"),
    ],
)
def test_the_selection_rule_is_stated(rule, sentence):
    rep = confirmed(f"rule-{rule}", rule=rule)
    (v,) = rep.verdicts
    assert v.rules == {rule or "unrecorded": 2 * len(SEEDS) * K}
    page = headline_html(rep)
    assert sentence.replace("'", "&#39;") in page
    if rule is None:
        assert "No score looked" not in page


def test_stop_subjects_that_score_the_fold_are_flagged():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "stop", "fixed")
    add_arm_study(storage, "stop", "uncertainty")
    study = add_confirm_study(storage, "stop", rule="inner")
    t = study.trials[0]
    bad = dict(t.user_attrs, fold_stop_subjects=t.user_attrs["fold_val_subjects"])
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=t.value, user_attrs=bad))  # a later rerun
    rep = report_of(storage, "stop")
    (v,) = rep.verdicts
    assert v.leaky_folds == K
    assert any("looked at their own validation fold" in w for w in rep.warnings)
    page = headline_html(rep)
    assert "those scores looked at their own validation fold" in page and "No score looked" not in page


# ----------------------------------------------------------------------------- learned weights


@pytest.mark.parametrize(
    ("search", "confirm", "flagged"), [(0.05, 0.05, True), (0.8, 0.8, False), (0.05, 0.3, False)]
)
def test_learned_weights_that_did_not_move_are_effectively_fixed(search, confirm, flagged):
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "still", "fixed")
    add_arm_study(storage, "still", "uncertainty", delta=search)
    add_confirm_study(storage, "still", delta=confirm)
    rep = report_of(storage, "still")
    moved = studies.weight_movement(rep.studies)
    assert moved == rep.movements
    assert set(moved) == {"uncertainty"}
    assert (moved["uncertainty"].search, moved["uncertainty"].confirm) == pytest.approx((search, confirm))
    assert moved["uncertainty"].largest == pytest.approx(max(search, confirm))
    assert moved["uncertainty"].effectively_fixed is flagged
    page = headline_html(rep)
    assert ("effectively fixed weights" in page) is flagged
    if flagged:
        assert f"moved at most |Δs| = {max(search, confirm):.3f}" in page
        assert "effectively fixed weights" in dashboard_note(rep)


def test_few_held_out_subjects_carry_the_skew_caveat():
    """Below SKEW_SAFE_SUBJECTS held-out subjects the variance sentence says the interval rests on
    their differences not being strongly skewed; from there on it does not."""
    from types import SimpleNamespace

    import numpy as np

    from study.report import sentences
    from study.subject_level import SKEW_SAFE_SUBJECTS, subject_comparison

    rng = np.random.default_rng(4)
    for h in (6, SKEW_SAFE_SUBJECTS - 1, SKEW_SAFE_SUBJECTS, 40):
        a = np.full((h, 3), 0.5)
        v = SimpleNamespace(
            cmp=SimpleNamespace(subjects=subject_comparison(a, a + rng.normal(0, 0.01, (h, 3))))
        )
        said = sentences.sentence("variance", v)
        assert said.startswith("Variance split")
        assert ("not being strongly skewed" in said) == (h < SKEW_SAFE_SUBJECTS), (h, said)
