"""Report, first stage: the studies read from the storage (:mod:`study.report.read` into the plain
records of :mod:`study.report.studies`), the warnings they carry, and the class reports."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from helpers import sqlite_url
from helpers.fake_study import (
    DIST,
    PASSWORD,
    RATIO,
    SEEDS,
    K,
    add_arm_study,
    add_confirm_study,
    confirm_scores,
    full_storage,
    oof_predictions,
    report_of,
)
from optuna.trial import TrialState, create_trial

from cmi_model.labels import EIGHTEEN_TO_NINE, GESTURES, NINE_CLASSES
from cmi_model.metric import score_indices
from study import records, report
from study.report import read, reproducibility
from study.report.page import SECTION_TITLES, render_html
from study.report.read import StudyNotFoundError
from study.report.studies import class_report
from study.stats import paired_comparison

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_missing_study_raises_listing_existing_studies():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "other", "fixed", states=("COMPLETE",))
    with pytest.raises(StudyNotFoundError, match="other-fixed") as err:
        read.read(storage, "nope")
    assert isinstance(err.value, ValueError)
    assert report.StudyNotFoundError is StudyNotFoundError  # the package's own, re-exported


def test_empty_storage_and_missing_file_raise(tmp_path):
    url = sqlite_url(tmp_path / "study.db")
    optuna.storages.get_storage(url)  # creates an empty database
    with pytest.raises(StudyNotFoundError, match="no studies"):
        read.read(url, "x")
    with pytest.raises(StudyNotFoundError, match="no SQLite database"):
        read.read(sqlite_url(tmp_path / "missing.db"), "x")
    assert not (tmp_path / "missing.db").exists()


def test_extract_one_arm_without_confirmation():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "solo", "fixed")
    studies = read.read(storage, "solo")
    assert list(studies.arms) == ["fixed"] and studies.confirm is None
    d = studies.arms["fixed"]
    assert d.state_counts == {"COMPLETE": 5, "PRUNED": 1, "FAIL": 1, "RUNNING": 1}
    assert d.budget == 8
    # best = last complete trial (#4): scores 0.70 + 0.04 + 0.005·f
    assert d.best is not None and d.best.number == 4
    assert d.best.value == pytest.approx(np.mean([0.74, 0.745, 0.75]))
    assert d.best.fold_scores == pytest.approx([0.74, 0.745, 0.75])
    # compute: trial i spends (10 + i) s per fold it finished; failed trial 3 s
    expected_seconds = sum(3 * (10 + i) for i in range(5)) + 2 * 15 + 3.0 + 1 * 17
    assert d.seconds == pytest.approx(expected_seconds)
    assert d.fold_trainings == 5 * 3 + 2 + 1 + 1
    pruned = d.trials[d.trials["state"] == "PRUNED"].iloc[0]
    assert pruned["n_folds_done"] == 2 and pruned["fold_mean"] == pytest.approx(np.mean([0.75, 0.755]))
    failed = d.trials[d.trials["state"] == "FAIL"].iloc[0]
    assert "out of memory" in failed["fail_reason"] and math.isnan(failed["value"])
    assert set(d.folds.columns) >= {"number", "fold", "score", "binary_f1", "macro_f1"}
    assert len(d.folds[d.folds["state"] == "COMPLETE"]) == 15
    # 5 complete trials: fewer than fANOVA needs, so a sentence instead of numbers
    assert (
        d.importances is None
        and "needs about 8 complete trials to say anything, this arm has 5" in d.importance_note
    )
    assert d.param_log["lr"] is True and d.param_log["alpha"] is False
    rep = report_of(storage, "solo")
    assert rep.comparisons == ()
    assert any("No confirmation study" in w for w in rep.warnings)
    assert any("still running" in w for w in rep.warnings)
    assert rep.warnings == tuple(studies.warnings())  # the analysis passes the studies' warnings on
    assert rep.data_info is not None and rep.data_info.is_synthetic and rep.data_info.n_subjects == 9
    assert studies.n_folds == K


def test_extract_accepts_an_arm_study_name():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "solo", "fixed")
    assert read.read(storage, "solo-fixed").name == "solo"


def test_extract_every_trial_pruned_or_failed():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "bad", "fixed", states=("PRUNED", "FAIL", "FAIL"))
    add_arm_study(storage, "bad", "uncertainty", states=("RUNNING",))
    rep = report_of(storage, "bad")
    arms = rep.studies.arms
    assert arms["fixed"].best is None and arms["uncertainty"].best is None
    assert arms["fixed"].importances is None
    assert "needs about 8 complete trials" in arms["fixed"].importance_note
    assert arms["fixed"].state_counts == {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 0}
    (cmp,) = rep.comparisons
    assert cmp.comparison is None and cmp.source == "none" and "nothing to compare" in cmp.note
    assert any("no complete trial" in w for w in rep.warnings)


def test_extract_empty_arm_study():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="fresh-fixed", direction="maximize")
    assert study.trials == []
    rep = report_of(storage, "fresh")
    assert len(rep.studies.arms["fixed"].trials) == 0 and rep.studies.arms["fixed"].seconds == 0.0
    html, figures = render_html(rep)
    assert figures == [] and all(t in html for t in SECTION_TITLES)


def test_extract_full_with_confirmation():
    rep = report_of(full_storage(optuna.storages.InMemoryStorage(), "full"), "full")
    data = rep.studies
    assert list(data.arms) == ["fixed", "uncertainty", "direct"]
    c = data.confirm
    assert (
        c is not None
        and c.arms == ["fixed", "uncertainty", "direct"]
        and c.seeds == list(SEEDS)
        and c.n_folds == K
    )
    assert len(c.scores) == 3 * len(SEEDS) * K
    assert c.seconds("fixed") == pytest.approx(20.0 * K * len(SEEDS))
    assert c.fold_trainings("uncertainty") == K * len(SEEDS)

    assert [(x.a, x.b) for x in rep.comparisons] == [("fixed", "uncertainty"), ("fixed", "direct")]
    cmp = rep.comparisons[0]
    assert cmp.source == "confirmation" and not cmp.selection_biased
    a = [s for seed in SEEDS for s in confirm_scores("fixed", seed)]
    b = [s for seed in SEEDS for s in confirm_scores("uncertainty", seed)]
    expected = paired_comparison(a, b, n_folds=K, test_train_ratio=RATIO)
    assert cmp.comparison == expected and cmp.comparison.test_train_ratio == RATIO
    assert cmp.pairs["a"].tolist() == pytest.approx(a) and cmp.pairs["b"].tolist() == pytest.approx(b)
    assert cmp.comparison.mean_diff == pytest.approx(
        0.01 + 0.001 * np.mean([s * f for s in SEEDS for f in range(K)])
    )
    assert rep.comparisons[1].comparison.mean_diff < 0  # direct is worse than fixed by construction

    # out-of-fold class reports: confirmation predictions concatenated over seeds
    reports = data.class_reports()
    assert set(reports) == {"fixed", "uncertainty", "direct"}
    fixed = reports["fixed"]
    assert fixed.n == 90 * len(SEEDS) and fixed.confusion.sum() == fixed.n
    assert "confirmation" in fixed.source
    assert not any("No confirmation study" in w for w in rep.warnings)


# ----------------------------------------------------------------------------- class reports


def test_class_report_per_class_f1_and_absent_classes():
    # one gesture from each of three 9-class labels; the other six labels never occur
    a, b, c = (next(i for i in range(len(GESTURES)) if EIGHTEEN_TO_NINE[i] == k) for k in range(3))
    rep = class_report([a, a, b, c], [a, b, b, a], "x")
    f1 = {k: rep.per_class_f1[NINE_CLASSES[k]] for k in range(len(NINE_CLASSES))}
    assert f1[0] == pytest.approx(0.5)  # TP 1, FP 1, FN 1: 2·1 / (2·1 + 1 + 1)
    assert f1[1] == pytest.approx(2 / 3)  # TP 1, FP 1, FN 0
    assert f1[2] == 0.0  # in the truth, never predicted
    assert all(math.isnan(f1[k]) for k in range(3, len(NINE_CLASSES)))  # absent from both: NaN
    assert rep.confusion.tolist()[:3] == [[1, 1, 0] + [0] * 6, [0, 1, 0] + [0] * 6, [1, 0, 0] + [0] * 6]


def test_class_report_matches_the_metric():
    rng = np.random.default_rng(3)
    oof = oof_predictions(rng, 0.5, n=400)
    rep = class_report(oof["y_true"], oof["y_pred"], "x")
    s = score_indices(np.array(oof["y_true"]), np.array(oof["y_pred"]))
    assert (rep.score, rep.binary_f1, rep.macro_f1) == pytest.approx((s.score, s.binary_f1, s.macro_f1))
    assert np.nanmean(list(rep.per_class_f1.values())) == pytest.approx(s.macro_f1)
    assert list(rep.per_class_f1) == list(NINE_CLASSES)
    t9 = EIGHTEEN_TO_NINE[np.array(oof["y_true"])]
    assert rep.confusion.sum(axis=1).tolist() == np.bincount(t9, minlength=9).tolist()
    with pytest.raises(ValueError, match="indices"):
        class_report([0, 18], [0, 1], "x")


# ----------------------------------------------------------------------------- what reading warns of


def test_budget_skips_are_not_counted_as_failures():
    storage = optuna.storages.InMemoryStorage()
    study = add_arm_study(storage, "bs", "fixed", states=("COMPLETE",))
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            user_attrs=records.trial_attrs(
                fail_reason=f"{records.BUDGET_TAKEN}: other workers already run the rest of the budget"
            ),
        )
    )
    d = read.read(storage, "bs").arms["fixed"]
    assert d.state_counts["FAIL"] == 0 and d.budget_skips == 1 and len(d.trials) == 1


def test_malformed_attributes_are_warnings_not_crashes(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    study = add_arm_study(storage, "mal", "fixed")
    add_arm_study(storage, "mal", "uncertainty")
    study.set_user_attr("n_folds", "three")  # hand-edited: not the storage format
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            value=0.5,
            params={"alpha": 0.5},
            distributions={"alpha": DIST["alpha"]},
            intermediate_values={0: 0.5, 1: 0.5},
            user_attrs={"fold_score": ["not a number"], "device": "cpu"},
        )
    )
    studies = read.read(storage, "mal")
    warnings = studies.warnings()
    d = studies.arms["fixed"]
    assert any("mal-fixed" in w and "attribute n_folds" in w for w in warnings)
    assert any("mal-fixed: trial #8: attribute folds.0.score" in w for w in warnings)
    # the study's other settings are gone with the malformed one; its trials are all still there
    assert d.budget is None and len(d.trials) == 9
    bad = d.trials[d.trials["number"] == 8].iloc[0]
    # without a readable record, the fold scores the trial reported to Optuna
    assert bad["n_folds_done"] == 2 and bad["device"] == "" and bad["value"] == 0.5
    assert d.best is not None and d.best.number == 4
    text = report.write_report(storage, "mal", tmp_path / "r.html").read_text(encoding="utf-8")
    assert "attribute n_folds" in text and "trial #8: attribute folds.0.score" in text
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in text


def test_an_unwritten_study_is_missing_not_malformed():
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="new-fixed", direction="maximize")
    studies = read.read(storage, "new")
    assert studies.arms["fixed"].record == records.ArmStudyRecord(arm="fixed")
    assert not any("attribute" in w for w in studies.warnings())


def test_a_search_that_saw_held_out_subjects_is_a_warning():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "leak", "fixed", holdout=())  # its search pool holds every subject
    add_arm_study(storage, "leak", "uncertainty")
    add_confirm_study(storage, "leak")
    rep = report_of(storage, "leak")
    assert any(w.startswith("fixed: the search used held-out subjects") for w in rep.warnings)


def test_redaction():
    # What the report masks URLs and commands with.
    redact_url, redact = read.redact_url, reproducibility.redact
    url = f"postgresql+psycopg2://bob:{PASSWORD}@db.example:5432/optuna"
    assert PASSWORD not in redact_url(url) and "bob" in redact_url(url) and "db.example" in redact_url(url)
    assert redact_url("sqlite:///reports/study.db") == "sqlite:///reports/study.db"
    cmd = f"cmi-study run --storage postgresql://bob:{PASSWORD}@db/x --n-trials 3"
    assert PASSWORD not in redact(cmd) and "--n-trials 3" in redact(cmd)
    assert PASSWORD not in read.storage_description(url)


# ----------------------------------------------------------------------------- confirmations that cannot go stale


def _best(storage, name: str, arm: str) -> int:
    return records.best_trial(optuna.load_study(study_name=f"{name}-{arm}", storage=storage).trials).number


def test_a_confirmation_of_an_earlier_best_is_superseded_and_left_out():
    storage = optuna.storages.InMemoryStorage()
    for i, arm in enumerate(("fixed", "uncertainty")):
        add_arm_study(storage, "stale", arm, seed=i)
    best = _best(storage, "stale", "uncertainty")
    add_confirm_study(storage, "stale", sources={"uncertainty": best + 1})  # a trial that is not the best
    rep = report_of(storage, "stale")
    confirm = rep.studies.confirm
    assert set(confirm.scores["arm"]) == {"fixed"} and set(confirm.subject_scores["arm"]) == {"fixed"}
    assert [src for _, src in confirm.superseded["uncertainty"]] == [best + 1] * len(SEEDS)
    (warning,) = [w for w in rep.warnings if w.startswith("uncertainty: its confirmation re-trained")]
    assert f"#{best + 1}, no longer its best search trial (#{best})" in warning and "superseded" in warning
    (cmp,) = rep.comparisons
    assert cmp.source == "search"  # no current pairs of both arms: the (flagged) best search trials
    assert not confirm.trials[confirm.trials["arm"] == "uncertainty"]["current"].any()


def test_an_arm_without_a_confirmation_of_its_best_is_named():
    storage = optuna.storages.InMemoryStorage()
    for i, arm in enumerate(("fixed", "uncertainty", "direct")):
        add_arm_study(storage, "some", arm, seed=i)
    add_confirm_study(storage, "some", arms=("fixed", "uncertainty"))
    rep = report_of(storage, "some")
    best = _best(storage, "some", "direct")
    assert (
        f"direct: no confirmation of its best search trial #{best} yet; run `cmi-study confirm`."
        in rep.warnings
    )
    assert not any(w.startswith(("fixed:", "uncertainty:")) and "confirmation" in w for w in rep.warnings)


def test_a_forced_confirmation_is_marked():
    storage = optuna.storages.InMemoryStorage()
    for i, arm in enumerate(("fixed", "uncertainty")):
        add_arm_study(storage, "forced", arm, seed=i)
    add_confirm_study(storage, "forced", forced=True)
    rep = report_of(storage, "forced")
    assert rep.studies.confirm.forced == ("fixed", "uncertainty")
    assert sum("confirmed with --unfinished while its search was unfinished" in w for w in rep.warnings) == 2
    assert rep.comparisons[0].source == "confirmation"  # forced pairs are current: they count


def test_per_subject_scores_of_the_current_pairs_are_read():
    storage = full_storage(optuna.storages.InMemoryStorage(), "subj")
    s = report_of(storage, "subj").studies.confirm.subject_scores
    assert list(s.columns[:4]) == ["arm", "seed", "fold", "subject"]
    assert len(s) == 3 * len(SEEDS) * K  # 3 arms, one held-out subject per fold
    one = s[(s["arm"] == "fixed") & (s["seed"] == SEEDS[0])].sort_values("fold")
    assert one["score"].tolist() == confirm_scores("fixed", SEEDS[0])
