"""The storage format: trial and study attributes written and read back through study.records."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from study import records
from study.records import FoldRecord, RecordError

optuna.logging.set_verbosity(optuna.logging.WARNING)

FOLDS = [
    FoldRecord(
        score=0.7 + 0.01 * k,
        binary_f1=0.8 + 0.01 * k,
        macro_f1=0.6 + 0.01 * k,
        epochs=5 + k,
        seconds=12.5 + k,
        weights={"multiclass": 0.5, "kl": 0.1 * k},
        weight_trajectory={"multiclass": [0.4, 0.5], "kl": [0.0, 0.1 * k]},
        subject_scores={
            f"SUBJ_{k}": records.SubjectScore(score=0.7, binary_f1=0.9, macro_f1=0.5, n=4 + k),
            f"SUBJ_{k + 10}": records.SubjectScore(score=0.6, binary_f1=0.8, macro_f1=0.4, n=2),
        },
    )
    for k in range(3)
]
FIELDS = dict(
    folds=FOLDS,
    device="cuda:0",
    oof=records.OOF(y_true=[0, 3, 17], y_pred=[0, 4, 17]),
    fail_reason="ValueError: loss is NaN",
    arm="uncertainty",
    seed=7,
    params={"lr": 1e-3, "dropout": 0.1},
    source_trial=4,
    forced=True,
    threads=2,
    precision="bf16-mixed",
)


def test_trial_attrs_round_trip_every_field():
    attrs = records.trial_attrs(**FIELDS)
    # one attribute per field; folds column-wise as fold_<field>
    fold_keys = {f"fold_{f}" for f in FoldRecord.model_fields}
    assert set(attrs) == fold_keys | (set(FIELDS) - {"folds"})
    assert attrs["fold_score"] == [f.score for f in FOLDS]
    assert attrs["fold_weight_trajectory"] == [f.weight_trajectory for f in FOLDS]
    trial = create_trial(state=TrialState.COMPLETE, value=0.71, user_attrs=attrs)
    back = records.read_trial(trial)
    assert back == records.TrialRecord(**FIELDS)
    assert set(records.TrialRecord.model_fields) == set(FIELDS)  # the round trip covers every field
    assert back.scores == [f.score for f in FOLDS] and back.fold_values("epochs") == [5, 6, 7]
    assert back.folds[2].subject_scores["SUBJ_2"].n == 6  # per-subject scores: one column, per fold


def test_current_pairs_are_those_of_each_arms_current_best():
    def pair(arm, seed, source):
        return records.TrialRecord(arm=arm, seed=seed, source_trial=source)

    pairs = [pair("fixed", 1, 0), pair("fixed", 1, 3), pair("uncertainty", 1, 2), pair("fixed", 2, 3)]
    pairs += [pair("dwa", 1, 0), pair("uncertainty", 2, None)]
    current, superseded = records.current_pairs(pairs, {"fixed": 3, "uncertainty": 2, "dwa": None})
    assert current == [pairs[1], pairs[2], pairs[3]]
    assert superseded == [pairs[0], pairs[4], pairs[5]]  # an earlier best, no best, no source
    assert records.current_pairs([], {"fixed": 0}) == ([], [])


def test_trial_attrs_write_only_the_given_fields():
    assert records.trial_attrs(fail_reason="x") == {"fail_reason": "x"}
    assert records.read_trial(create_trial(state=TrialState.FAIL, user_attrs={})) == records.TrialRecord()
    with pytest.raises(RecordError):
        records.trial_attrs(seed="seven")


def test_unfinished_fold_fields_take_their_defaults():
    attrs = records.trial_attrs(folds=[FoldRecord(score=0.5)])
    attrs["fold_seconds"] = []  # an older writer that did not record this field
    (fold,) = records.read_trial(create_trial(value=0.5, user_attrs=attrs)).folds
    assert fold.score == 0.5 and math.isnan(fold.seconds) and fold.epochs is None


@pytest.mark.parametrize(
    "attrs",
    [
        {"fold_score": ["not a number"]},
        {"fold_score": [0.5], "fold_epochs": ["many"]},
        {"device": 3},
        {"seed": "seven"},
        {"oof": {"y_true": [0, 1]}},
        {"params": [1, 2]},
    ],
)
def test_read_trial_raises_record_error_on_a_malformed_attribute(attrs):
    trial = create_trial(value=0.5, user_attrs=attrs)
    with pytest.raises(RecordError, match="attribute"):
        records.read_trial(trial)


def test_read_trial_ignores_other_tools_attributes():
    attrs = records.trial_attrs(device="cpu") | {"dashboard_tag": "x"}
    assert records.read_trial(create_trial(value=0.5, user_attrs=attrs)).device == "cpu"


def _trials(*specs: tuple[TrialState, float | None]) -> list[optuna.trial.FrozenTrial]:
    study = optuna.create_study(direction="maximize")
    for state, value in specs:
        study.add_trial(create_trial(state=state, value=value))
    return study.get_trials(deepcopy=False)


def test_best_trial_ignores_unfinished_and_non_finite_and_prefers_the_earlier():
    trials = _trials(
        (TrialState.COMPLETE, 0.6),
        (TrialState.PRUNED, 0.9),
        (TrialState.COMPLETE, 0.8),
        (TrialState.FAIL, None),
        (TrialState.COMPLETE, math.inf),
        (TrialState.COMPLETE, 0.8),
        (TrialState.RUNNING, None),
    )
    best = records.best_trial(trials)
    assert best is not None and best.number == 2 and best.value == 0.8
    assert records.best_trial(_trials((TrialState.PRUNED, 0.9), (TrialState.FAIL, None))) is None
    assert records.best_trial([]) is None


def test_base_name_accepts_name_and_name_arm():
    existing = {"x-fixed", "x-confirm", "a-fixed-fixed"}
    assert records.base_name("x", existing) == "x"
    assert records.base_name("x-fixed", existing) == "x"
    assert records.base_name("x-uncertainty", existing) == "x"  # an arm not run yet, of a study that is
    assert records.base_name("x-confirm", existing) == "x"
    assert records.base_name("a-fixed", existing) == "a-fixed"  # a study whose name ends in an arm
    assert records.base_name("nope", existing) == "nope"
    assert records.study_name("x", "fixed") == "x-fixed"


def test_is_budget_skip():
    skip = create_trial(
        state=TrialState.FAIL,
        user_attrs=records.trial_attrs(fail_reason=f"{records.BUDGET_TAKEN}: other workers hold it"),
    )
    failed = create_trial(state=TrialState.FAIL, user_attrs=records.trial_attrs(fail_reason="OOM"))
    assert records.is_budget_skip(skip) and not records.is_budget_skip(failed)


def test_study_records_round_trip_and_malformed_study():
    study = optuna.create_study(direction="maximize")
    arm = records.ArmStudyRecord(
        arm="fixed",
        search_space={"lr": "log-uniform"},
        n_folds=5,
        seed=42,
        n_trials=30,
        data=records.DataInfo(source="synthetic", n_subjects=9, fingerprint="ab"),
        versions=records.package_versions(),
        command="cmi-study run",
    )
    records.write_study(study, arm)
    assert records.read_arm_study(study) == arm and records.read_arm_study(study).data.is_synthetic
    assert "python" in arm.versions
    confirm = optuna.create_study()
    records.write_study(confirm, records.ConfirmStudyRecord(arms=["fixed"], seeds=[1, 2], n_folds=3))
    assert records.read_confirm_study(confirm).seeds == [1, 2]
    study.set_user_attr("n_folds", "five")
    with pytest.raises(RecordError, match="attribute n_folds"):
        records.read_arm_study(study)
