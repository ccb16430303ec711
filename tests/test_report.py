"""Report: extraction from tiny studies, figure records and smoke tests, and the HTML in headless Chromium."""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from plotly.offline import get_plotlyjs

from cmi_model.labels import EIGHTEEN_TO_NINE, GESTURES, NINE_CLASSES
from cmi_model.metric import score_indices
from study import records, report
from study.report import (
    SECTION_TITLES,
    SECTIONS,
    StudyNotFoundError,
    class_report,
    extract,
    fmt,
    redact,
    redact_url,
    render_html,
    write_report,
)
from study.report import figures as figures_mod
from study.stats import holm, paired_comparison

optuna.logging.set_verbosity(optuna.logging.WARNING)

K = 3  # folds in the fixtures
SEEDS = (0, 1, 2)
DIST = {
    "lr": FloatDistribution(1e-4, 1e-2, log=True),
    "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
    "dropout": FloatDistribution(0.0, 0.5),
    "alpha": FloatDistribution(0.1, 0.9),
    "nine_class_loss_weight": FloatDistribution(0.0, 1.0),
    "kl_weight": FloatDistribution(0.0, 0.5),
    "uncertainty_init_value": FloatDistribution(-1.0, 1.0),
    "weight_lr_multiplier": FloatDistribution(0.1, 10.0, log=True),
    "dwa_temperature": FloatDistribution(0.5, 10.0, log=True),
    "famo_lr": FloatDistribution(1e-3, 0.1, log=True),
}
ARM_PARAMS = {
    "fixed": ("lr", "weight_decay", "dropout", "alpha", "nine_class_loss_weight", "kl_weight"),
    "uncertainty": ("lr", "weight_decay", "dropout", "uncertainty_init_value", "weight_lr_multiplier"),
    "direct": ("lr", "weight_decay", "dropout", "weight_lr_multiplier"),
    "equal": ("lr", "weight_decay", "dropout"),
    "dwa": ("lr", "weight_decay", "dropout", "dwa_temperature"),
    "famo": ("lr", "weight_decay", "dropout", "famo_lr"),
    "imtl_l": ("lr", "weight_decay", "dropout", "weight_lr_multiplier"),
    "rlw": ("lr", "weight_decay", "dropout"),
}
BASE = {"fixed": 0.70, "uncertainty": 0.71, "direct": 0.69}
# The arms added with TorchJD (tests of several arms against fixed): not in the default fixtures.
MORE_BASE = {"equal": 0.695, "dwa": 0.708, "famo": 0.686, "imtl_l": 0.713, "rlw": 0.701}
ALL_ARMS = ("fixed", "equal", "uncertainty", "direct", "dwa", "famo", "imtl_l", "rlw")
DEFAULT_STATES = ("COMPLETE",) * 5 + ("PRUNED", "FAIL", "RUNNING")
PASSWORD = "s3cr3t-pw"
EVIL = "<script>window.__pwned=1</script>"
SEARCH_SEED = 42
SUBJECTS = [f"SUBJ_{i:06d}" for i in range(9)]
HOLDOUT = tuple(SUBJECTS[6:])  # the confirmation validates on these only
DELTA = {"uncertainty": 0.8, "direct": 0.5}  # max |Δs| of the learned log-weights within a fold
TERMS = ("multiclass", "binary", "nine_class", "kl")
RATIO = 1 / 8  # n_test/n_train of the confirmation folds: 1 held-out subject vs 6 pool + 2 held-out


def _oof(rng: np.random.Generator, acc: float, n: int = 90) -> dict[str, list[int]]:
    y_true = rng.integers(0, len(GESTURES), n)
    y_pred = np.where(rng.random(n) < acc, y_true, rng.integers(0, len(GESTURES), n))
    return {"y_true": y_true.tolist(), "y_pred": y_pred.tolist()}


def _weights(arm: str, params: dict, folds: int, epochs: int = 6):
    if arm == "equal":
        w = dict.fromkeys(TERMS, 1.0)
        return [dict(w) for _ in range(folds)], [{k: [1.0] * epochs for k in TERMS} for _ in range(folds)]
    if arm == "fixed":
        w = {
            "multiclass": params["alpha"],
            "binary": 1 - params["alpha"],
            "nine_class": params["nine_class_loss_weight"],
            "kl": params["kl_weight"],
        }
        return [dict(w) for _ in range(folds)], [
            {k: [v] * epochs for k, v in w.items()} for _ in range(folds)
        ]
    traj = []
    for f in range(folds):
        e = np.arange(1, epochs + 1)
        traj.append(
            {
                "multiclass": (0.5 + 0.1 * f + 0.3 * (1 - np.exp(-e / 2))).tolist(),
                "binary": (0.5 - 0.02 * e).tolist(),
                "nine_class": (0.3 + 0.01 * e * (f + 1)).tolist(),
                "kl": (0.1 + 0.0 * e).tolist(),
            }
        )
    return [{k: v[-1] for k, v in t.items()} for t in traj], traj


def fold_facts(
    arm: str, val: list[str], pool: list[str], *, rule: str | None, delta: float | None, epochs: int = 6
) -> dict:
    """The selection and learned-weight fields of records.FoldRecord for one fold."""
    learned = arm not in ("fixed", "equal", "rlw")  # rules, nothing learned (no learned_start/end)
    d = (delta if delta is not None else DELTA.get(arm, 0.3)) if learned else None
    start = {f"s_{t}": 0.0 for t in TERMS} if learned else {}
    e = np.arange(1, epochs + 1)
    return dict(
        rule=rule,
        val_subjects=list(val),
        stop_subjects=[s for s in pool if s not in val][:1] if rule == "inner" else [],
        learned_start=start,
        learned_end={k: (d if i == 0 else -d / 2) for i, k in enumerate(start)},
        max_abs_delta_s=d,
        loss_trajectory={
            "multiclass": (2.0 / (1 + 0.3 * e)).tolist(),
            "binary": (0.7 / (1 + 0.1 * e)).tolist(),
            "nine_class": (1.8 / (1 + 0.2 * e)).tolist(),
            "kl": (0.05 + 0.0 * e).tolist(),
        },
    )


def add_arm_study(
    storage,
    name: str,
    arm: str,
    states=DEFAULT_STATES,
    *,
    seed: int = 0,
    rule: str | None = "last_epoch",
    delta: float | None = None,
    holdout: tuple[str, ...] = HOLDOUT,
) -> optuna.Study:
    """An arm study written in the storage format of study.records."""
    rng = np.random.default_rng(seed + len(arm))
    pool = [s for s in SUBJECTS if s not in holdout]
    study = optuna.create_study(storage=storage, study_name=f"{name}-{arm}", direction="maximize")
    record = records.ArmStudyRecord(
        arm=arm,
        search_space={p: f"{DIST[p]}" for p in ARM_PARAMS[arm]},
        n_folds=K,
        seed=SEARCH_SEED,
        n_trials=len(states),
        epochs=6,
        preset="tiny",
        data=records.DataInfo(
            source="synthetic", n_sequences=270, n_subjects=9, n_rows=19000, fingerprint="ab12cd34ef56"
        ),
        versions={"optuna": optuna.__version__, "torch": "2.13.0+cpu"},
        command=f"cmi-study run --storage postgresql://bob:{PASSWORD}@db/x --study-name {name}",
        search_subjects=pool,
        holdout_subjects=list(holdout),
    )
    records.write_study(study, record)
    for i, state in enumerate(states):
        params = {
            p: float(DIST[p].low + (DIST[p].high - DIST[p].low) * rng.random()) for p in ARM_PARAMS[arm]
        }
        for p in ("lr", "weight_decay", "weight_lr_multiplier", "dwa_temperature", "famo_lr"):
            if p in params:
                lo, hi = math.log(DIST[p].low), math.log(DIST[p].high)
                params[p] = float(math.exp(lo + (hi - lo) * rng.random()))
        n_done = {"COMPLETE": K, "PRUNED": 2, "FAIL": 1, "RUNNING": 1}[state]
        scores = [round(BASE[arm] + 0.01 * i + 0.005 * f, 6) for f in range(n_done)]
        fold_weights, traj = _weights(arm, params, n_done)
        folds = [
            records.FoldRecord(
                score=s,
                binary_f1=s + 0.1,
                macro_f1=s - 0.1,
                weights=fold_weights[f],
                weight_trajectory=traj[f],
                epochs=6,
                seconds=10.0 + i,
                **fold_facts(arm, pool[2 * f : 2 * f + 2], pool, rule=rule, delta=delta),
            )
            for f, s in enumerate(scores)
        ]
        ua = records.trial_attrs(folds=folds, device="cpu", oof=_oof(rng, 0.6 + 0.03 * i))
        value = None
        if state == "COMPLETE":
            value = float(np.mean(scores))
        elif state == "PRUNED":
            value = scores[-1]  # Optuna stores the last intermediate value of a pruned trial
        elif state == "FAIL":
            # Failed in its second fold, after 3 s on a first one (a failed trial keeps its finished folds).
            ua = records.trial_attrs(
                folds=[records.FoldRecord(score=scores[0], seconds=3.0)],
                fail_reason="CUDA out of memory <b>bold</b>",
            )
        study.add_trial(
            create_trial(
                state=TrialState[state],
                value=value,
                params=params,
                distributions={p: DIST[p] for p in params},
                intermediate_values=dict(enumerate(scores)),
                user_attrs=ua,
            )
        )
    return study


def confirm_scores(arm: str, seed: int) -> list[float]:
    return [
        round(BASE[arm] + 0.04 + 0.003 * seed + 0.002 * f + (0.001 * seed * f if arm != "fixed" else 0), 6)
        for f in range(K)
    ]


def noisy_scores(mean: float, sd: float):
    """Confirmation scores whose differences to fixed have this mean and about this spread."""

    def scores(arm: str, seed: int) -> list[float]:
        base = [0.7 + 0.003 * seed + 0.002 * f for f in range(K)]
        if arm == "fixed":
            return base
        return [b + mean + sd * (((seed * K + f) * 7) % 5 - 2) / 1.58 for f, b in enumerate(base)]

    return scores


def add_confirm_study(
    storage,
    name: str,
    arms=("fixed", "uncertainty"),
    seeds=SEEDS,
    *,
    scores=confirm_scores,
    n_folds: int = K,
    rule: str | None = "last_epoch",
    delta: float | None = None,
    holdout: tuple[str, ...] = HOLDOUT,
) -> optuna.Study:
    study = optuna.create_study(storage=storage, study_name=f"{name}-confirm", direction="maximize")
    ratio = RATIO if holdout else 1 / (K - 1)
    record = records.ConfirmStudyRecord(
        arms=list(arms), seeds=list(seeds), n_folds=K, holdout_subjects=list(holdout), test_train_ratio=ratio
    )
    records.write_study(study, record)
    rng = np.random.default_rng(7)
    dist = {"arm": CategoricalDistribution(list(arms)), "seed": IntDistribution(0, 2**31 - 1)}
    for arm in arms:
        for seed in seeds:
            values = scores(arm, seed)[:n_folds]
            folds = [
                records.FoldRecord(
                    score=s,
                    binary_f1=s + 0.1,
                    macro_f1=s - 0.1,
                    seconds=20.0,
                    **fold_facts(
                        arm,
                        [holdout[f]] if holdout else SUBJECTS[3 * f : 3 * f + 3],
                        SUBJECTS,
                        rule=rule,
                        delta=delta,
                    ),
                )
                for f, s in enumerate(values)
            ]
            study.add_trial(
                create_trial(
                    state=TrialState.COMPLETE,
                    value=float(np.mean(values)),
                    params={"arm": arm, "seed": seed},
                    distributions=dist,
                    user_attrs=records.trial_attrs(
                        arm=arm, seed=seed, folds=folds, params={"lr": 1e-3}, oof=_oof(rng, 0.7)
                    ),
                )
            )
    return study


def full_storage(storage, name: str, arms=("fixed", "uncertainty", "direct"), confirm=True):
    """Every arm with complete, pruned, failed and running trials, plus a finished confirmation study."""
    for i, arm in enumerate(arms):
        add_arm_study(storage, name, arm, seed=i)
    if confirm:
        add_confirm_study(storage, name, arms=arms)
    return storage


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


# ----------------------------------------------------------------------------- extraction


def test_missing_study_raises_listing_existing_studies():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "other", "fixed", states=("COMPLETE",))
    with pytest.raises(StudyNotFoundError, match="other-fixed") as err:
        extract(storage, "nope")
    assert isinstance(err.value, ValueError)


def test_empty_storage_and_missing_file_raise(tmp_path, sqlite_url):
    optuna.storages.get_storage(sqlite_url)  # creates an empty database
    with pytest.raises(StudyNotFoundError, match="no studies"):
        extract(sqlite_url, "x")
    with pytest.raises(StudyNotFoundError, match="no SQLite database"):
        extract(f"sqlite:///{tmp_path / 'missing.db'}", "x")
    assert not (tmp_path / "missing.db").exists()


def test_extract_one_arm_without_confirmation():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "solo", "fixed")
    data = extract(storage, "solo")
    assert list(data.arms) == ["fixed"] and data.confirm is None
    d = data.arms["fixed"]
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
    assert d.importances is not None and set(d.importances) <= set(ARM_PARAMS["fixed"])
    assert sum(d.importances.values()) == pytest.approx(1.0)
    assert d.param_log["lr"] is True and d.param_log["alpha"] is False
    assert data.comparisons == []
    assert any("No confirmation study" in w for w in data.warnings)
    assert any("still running" in w for w in data.warnings)
    assert data.data_info is not None and data.data_info.is_synthetic and data.data_info.n_subjects == 9
    assert data.n_folds == K


def test_extract_accepts_an_arm_study_name():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "solo", "fixed")
    assert extract(storage, "solo-fixed").name == "solo"


def test_extract_every_trial_pruned_or_failed():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "bad", "fixed", states=("PRUNED", "FAIL", "FAIL"))
    add_arm_study(storage, "bad", "uncertainty", states=("RUNNING",))
    data = extract(storage, "bad")
    assert data.arms["fixed"].best is None and data.arms["uncertainty"].best is None
    assert data.arms["fixed"].importances is None
    assert "at least 2 complete" in data.arms["fixed"].importance_note
    assert data.arms["fixed"].state_counts == {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 0}
    (cmp,) = data.comparisons
    assert cmp.comparison is None and cmp.source == "none" and "nothing to compare" in cmp.note
    assert any("no complete trial" in w for w in data.warnings)


def test_extract_empty_arm_study():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="fresh-fixed", direction="maximize")
    assert study.trials == []
    data = extract(storage, "fresh")
    assert len(data.arms["fixed"].trials) == 0 and data.arms["fixed"].seconds == 0.0
    html, figures = render_html(data)
    assert figures == [] and all(t in html for t in SECTION_TITLES)


def test_extract_full_with_confirmation():
    data = extract(full_storage(optuna.storages.InMemoryStorage(), "full"), "full")
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

    assert [(x.a, x.b) for x in data.comparisons] == [("fixed", "uncertainty"), ("fixed", "direct")]
    cmp = data.comparisons[0]
    assert cmp.source == "confirmation" and not cmp.selection_biased
    a = [s for seed in SEEDS for s in confirm_scores("fixed", seed)]
    b = [s for seed in SEEDS for s in confirm_scores("uncertainty", seed)]
    expected = paired_comparison(a, b, n_folds=K, test_train_ratio=RATIO)
    assert cmp.comparison == expected and cmp.comparison.test_train_ratio == RATIO
    assert cmp.pairs["a"].tolist() == pytest.approx(a) and cmp.pairs["b"].tolist() == pytest.approx(b)
    assert cmp.comparison.mean_diff == pytest.approx(
        0.01 + 0.001 * np.mean([s * f for s in SEEDS for f in range(K)])
    )
    assert data.comparisons[1].comparison.mean_diff < 0  # direct is worse than fixed by construction

    # out-of-fold class reports: confirmation predictions concatenated over seeds
    reports = data.class_reports()
    assert set(reports) == {"fixed", "uncertainty", "direct"}
    rep = reports["fixed"]
    assert rep.n == 90 * len(SEEDS) and rep.confusion.sum() == rep.n
    assert "confirmation" in rep.source
    assert not any("No confirmation study" in w for w in data.warnings)


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
    oof = _oof(rng, 0.5, n=400)
    rep = class_report(oof["y_true"], oof["y_pred"], "x")
    s = score_indices(np.array(oof["y_true"]), np.array(oof["y_pred"]))
    assert (rep.score, rep.binary_f1, rep.macro_f1) == pytest.approx((s.score, s.binary_f1, s.macro_f1))
    assert np.nanmean(list(rep.per_class_f1.values())) == pytest.approx(s.macro_f1)
    assert list(rep.per_class_f1) == list(NINE_CLASSES)
    t9 = EIGHTEEN_TO_NINE[np.array(oof["y_true"])]
    assert rep.confusion.sum(axis=1).tolist() == np.bincount(t9, minlength=9).tolist()
    with pytest.raises(ValueError, match="indices"):
        class_report([0, 18], [0, 1], "x")


def test_fallback_to_best_trials_is_flagged_selection_biased():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "nc", "fixed")
    add_arm_study(storage, "nc", "uncertainty")
    data = extract(storage, "nc")
    (cmp,) = data.comparisons
    assert cmp.source == "search" and cmp.selection_biased and "SELECTION-BIASED" in cmp.note
    fixed_best, unc_best = data.arms["fixed"].best, data.arms["uncertainty"].best
    assert cmp.pairs["a"].tolist() == pytest.approx(fixed_best.fold_scores)
    assert cmp.pairs["b"].tolist() == pytest.approx(unc_best.fold_scores)
    assert cmp.comparison.n == K and cmp.comparison.mean_diff == pytest.approx(0.01)
    html, _ = render_html(data)
    assert "selection-biased" in html.lower()


def test_arms_on_different_splits_are_not_paired():
    storage = optuna.storages.InMemoryStorage()
    study = add_arm_study(storage, "ds", "fixed")
    records.write_study(study, records.read_arm_study(study).model_copy(update={"seed": 1}))
    add_arm_study(storage, "ds", "uncertainty")
    data = extract(storage, "ds")
    assert data.comparisons[0].comparison is None and "different fold splits" in data.comparisons[0].note
    assert any("differ in seed" in w for w in data.warnings)


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
    d = extract(storage, "bs").arms["fixed"]
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
    data = extract(storage, "mal")
    d = data.arms["fixed"]
    assert any("mal-fixed" in w and "attribute n_folds" in w for w in data.warnings)
    assert any("mal-fixed: trial #8: attribute folds.0.score" in w for w in data.warnings)
    # the study's other settings are gone with the malformed one; its trials are all still there
    assert d.budget is None and len(d.trials) == 9
    bad = d.trials[d.trials["number"] == 8].iloc[0]
    # without a readable record, the fold scores the trial reported to Optuna
    assert bad["n_folds_done"] == 2 and bad["device"] == "" and bad["value"] == 0.5
    assert d.best is not None and d.best.number == 4
    text = write_report(storage, "mal", tmp_path / "r.html").read_text(encoding="utf-8")
    assert "attribute n_folds" in text and "trial #8: attribute folds.0.score" in text
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in text


def test_an_unwritten_study_is_missing_not_malformed():
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="new-fixed", direction="maximize")
    data = extract(storage, "new")
    assert data.arms["fixed"].record == records.ArmStudyRecord(arm="fixed")
    assert not any("attribute" in w for w in data.warnings)


def _plotly_objects(obj, path="data") -> list[str]:
    """Paths of every plotly object inside obj (dataclasses, dicts, lists and DataFrame cells walked)."""
    if type(obj).__module__.startswith("plotly"):
        return [path]
    if isinstance(obj, pd.DataFrame):
        cells = [v for col in obj.columns for v in obj[col].tolist()]
        return [p for i, v in enumerate(cells) for p in _plotly_objects(v, f"{path}[{i}]")]
    if dataclasses.is_dataclass(obj):
        return [
            p
            for f in dataclasses.fields(obj)
            for p in _plotly_objects(getattr(obj, f.name), f"{path}.{f.name}")
        ]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _plotly_objects(v, f"{path}[{k!r}]")]
    if isinstance(obj, list | tuple):
        return [p for i, v in enumerate(obj) for p in _plotly_objects(v, f"{path}[{i}]")]
    return []


def test_figure_records_are_plain_data():
    data = extract(full_storage(optuna.storages.InMemoryStorage(), "plain"), "plain")
    ref = report.fixed_reference_weights(data.arms)
    figure_records = {
        "comparison": data.comparisons[0],
        "search": report.search_trials(data.arms),
        "weights": report.weights_info(data.arms, report.weight_movement(data), ref),
        "landscape": report.landscape_info(data.arms["fixed"]),
        "slices": report.slice_info(data.arms["fixed"]),
        "importances": report.importances_info(data.arms),
        "metric parts": report.metric_parts_frame(data),
        "classes": data.class_reports(),
    }
    assert all(r is not None and (not hasattr(r, "__len__") or len(r)) for r in figure_records.values())
    assert _plotly_objects(figure_records) == [] and _plotly_objects(data) == []
    search = figure_records["search"]
    assert list(search["arm"].unique()) == ["fixed", "uncertainty", "direct"]
    assert len(search) == 3 * len(DEFAULT_STATES)
    w = figure_records["weights"]
    assert [p.arm for p in w.panels] == ["uncertainty", "direct"]
    assert w.terms == ["multiclass", "binary", "nine_class", "kl"] and len(w.panels[0].trajectory) == K
    assert w.fixed == pytest.approx(ref)
    # 1/L of each epoch's training loss: the uncertainty arm's stationary weight; none for direct
    loss = data.arms["uncertainty"].best.folds[0].loss_trajectory["binary"]
    assert w.panels[0].optimum[0]["binary"] == pytest.approx([1 / v for v in loss])
    assert w.panels[1].optimum == []
    assert w.panels[0].movement.largest == pytest.approx(DELTA["uncertainty"])
    land = figure_records["landscape"]
    assert len(land.trials) == 5 and land.best[0] == data.arms["fixed"].best.number
    sl = figure_records["slices"]
    assert sl.params == ["alpha", "nine_class_loss_weight", "kl_weight", "lr", "weight_decay", "dropout"]
    assert sl.log == {p: p in ("lr", "weight_decay") for p in sl.params}
    assert list(figure_records["importances"]) == ["fixed", "uncertainty", "direct"]


def test_partial_confirmation_falls_back_per_comparison():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "pc", "fixed")
    add_arm_study(storage, "pc", "uncertainty")
    add_confirm_study(storage, "pc", arms=("fixed",))
    data = extract(storage, "pc")
    (cmp,) = data.comparisons
    assert cmp.source == "search" and cmp.selection_biased


def test_report_without_optuna_dashboard(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import raises ImportError
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "nd", "fixed", states=("COMPLETE",))
    data = extract(storage, "nd")
    assert report.save_to_dashboard(storage, data, []) is False
    assert write_report(storage, "nd", tmp_path / "r.html").exists()


def test_redaction():
    url = f"postgresql+psycopg2://bob:{PASSWORD}@db.example:5432/optuna"
    assert PASSWORD not in redact_url(url) and "bob" in redact_url(url) and "db.example" in redact_url(url)
    assert redact_url("sqlite:///reports/study.db") == "sqlite:///reports/study.db"
    cmd = f"cmi-study run --storage postgresql://bob:{PASSWORD}@db/x --n-trials 3"
    assert PASSWORD not in redact(cmd) and "--n-trials 3" in redact(cmd)


# ----------------------------------------------------------------------------- headline: what the verdict rests on


def headline_html(data) -> str:
    """The page's headline section, rendered."""
    text, _ = render_html(data)
    return text[text.index('<section id="1-headline">') : text.index('<section id="2-')]


def confirmed(name: str, arms=("fixed", "uncertainty"), **confirm) -> report.ReportData:
    """Arm studies and a confirmation study; keyword arguments go to add_confirm_study (and the
    rule, delta and holdout to the arm studies too)."""
    storage = optuna.storages.InMemoryStorage()
    shared = {k: confirm[k] for k in ("rule", "holdout") if k in confirm}
    for i, arm in enumerate(a for a in arms if a in ARM_PARAMS):
        add_arm_study(storage, name, arm, seed=i, **shared)
    add_confirm_study(storage, name, arms=arms, **confirm)
    return extract(storage, name)


def test_several_comparisons_are_holm_adjusted():
    data = confirmed("holm", arms=("fixed", "uncertainty", "direct"))
    raw = [c.comparison.p_value for c in data.comparisons]
    assert len(raw) == 2
    assert [c.p_adjusted for c in data.comparisons] == pytest.approx(holm(raw))
    assert all(c.n_adjusted == 2 for c in data.comparisons)
    page = headline_html(data)
    assert "Holm-adjusted for 2 comparisons against fixed" in page
    assert page.count("; Holm-adjusted for 2 comparisons: ") == 2  # beside each raw p
    assert "Holm-adjusted" in report.dashboard_note(data)


def test_three_comparisons_against_fixed():
    BASE["other"] = 0.705  # a fourth arm, known only to the confirmation study
    try:
        data = confirmed("holm3", arms=("fixed", "uncertainty", "direct", "other"))
    finally:
        del BASE["other"]
    assert [(c.a, c.b) for c in data.comparisons] == [
        ("fixed", b) for b in ("uncertainty", "direct", "other")
    ]
    raw = [c.comparison.p_value for c in data.comparisons]
    assert [c.p_adjusted for c in data.comparisons] == pytest.approx(holm(raw))
    assert "Holm-adjusted for 3 comparisons" in headline_html(data)


def test_one_comparison_is_not_adjusted():
    data = confirmed("one")
    (cmp,) = data.comparisons
    assert cmp.p_adjusted is None and cmp.n_adjusted == 1
    text, _ = render_html(data)
    assert "Holm" not in text
    assert "Holm" not in report.dashboard_note(data)


def test_too_few_paired_scores_give_no_interval():
    data = confirmed("few", seeds=(0,), n_folds=2)
    (cmp,) = data.comparisons
    assert cmp.source == "confirmation" and cmp.comparison is None and cmp.too_few and len(cmp.pairs) == 2
    page = headline_html(data)
    assert "too few paired scores for a verdict" in page
    assert "interval [" not in page and "Only 2 paired scores" in page
    assert "too few paired scores for a verdict" in report.dashboard_note(data)


def test_inconclusive_says_how_many_more_seeds_would_decide():
    data = confirmed("more", scores=noisy_scores(0.012, 0.01))
    (v,) = report.verdicts(data)
    c = v.cmp.comparison
    assert c.verdict == "inconclusive" and c.seeds_needed is not None and c.seeds_needed > len(SEEDS)
    assert v.seeds_used == len(SEEDS) and v.more_seeds == c.seeds_needed - len(SEEDS)
    page = headline_html(data)
    assert f"Not enough evidence: about {c.seeds_needed - len(SEEDS)} more confirm seeds would decide" in page
    # the difference and its interval lead, then the verdict
    lead = f"uncertainty − fixed = {c.mean_diff:+.4f}, 95% interval [{c.ci_low:+.4f}, {c.ci_high:+.4f}]: inconclusive"
    assert lead in page
    assert "about" in report.dashboard_note(data) and "more confirm seeds" in report.dashboard_note(data)


def test_inconclusive_beyond_any_seed_count_states_the_smallest_detectable_difference():
    data = confirmed("mde", scores=noisy_scores(0.006, 0.05))
    (v,) = report.verdicts(data)
    c = v.cmp.comparison
    assert c.verdict == "inconclusive" and c.seeds_needed is None and v.more_seeds is None
    assert f"the study could not detect differences smaller than {c.mde:.4f}" in headline_html(data)


def test_held_out_subjects_are_named():
    data = confirmed("held")
    (v,) = report.verdicts(data)
    assert v.subjects_kind == "holdout" and v.subjects == sorted(HOLDOUT)
    page = headline_html(data)
    assert f"Scored on the {len(HOLDOUT)} held-out subjects" in page
    assert "<details" in page and all(s in page for s in HOLDOUT)
    assert not any("share subjects" in w for w in data.warnings)


def test_no_holdout_warns_that_selection_and_confirmation_share_subjects():
    data = confirmed("shared", holdout=())
    (v,) = report.verdicts(data)
    assert v.subjects_kind == "shared"
    (warning,) = [w for w in data.warnings if "share subjects" in w]
    assert "--holdout 0" in warning and "optimistic for the arm with more tuned dimensions" in warning
    assert "fixed: 6, uncertainty: 5" in warning
    page = headline_html(data)
    assert "selection and confirmation share subjects" in page and "no subjects were held out" in page


def test_a_search_that_saw_held_out_subjects_is_a_warning():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "leak", "fixed", holdout=())  # its search pool holds every subject
    add_arm_study(storage, "leak", "uncertainty")
    add_confirm_study(storage, "leak")
    data = extract(storage, "leak")
    assert any(w.startswith("fixed: the search used held-out subjects") for w in data.warnings)


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
    data = confirmed(f"rule-{rule}", rule=rule)
    (v,) = report.verdicts(data)
    assert v.rules == {rule or "unrecorded": 2 * len(SEEDS) * K}
    page = headline_html(data)
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
    data = extract(storage, "stop")
    (v,) = report.verdicts(data)
    assert v.leaky_folds == K
    assert any("looked at their own validation fold" in w for w in data.warnings)
    page = headline_html(data)
    assert "those scores looked at their own validation fold" in page and "No score looked" not in page


@pytest.mark.parametrize(
    ("search", "confirm", "flagged"), [(0.05, 0.05, True), (0.8, 0.8, False), (0.05, 0.3, False)]
)
def test_learned_weights_that_did_not_move_are_effectively_fixed(search, confirm, flagged):
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "still", "fixed")
    add_arm_study(storage, "still", "uncertainty", delta=search)
    add_confirm_study(storage, "still", delta=confirm)
    data = extract(storage, "still")
    moved = report.weight_movement(data)
    assert set(moved) == {"uncertainty"}
    assert (moved["uncertainty"].search, moved["uncertainty"].confirm) == pytest.approx((search, confirm))
    assert moved["uncertainty"].largest == pytest.approx(max(search, confirm))
    page = headline_html(data)
    assert ("effectively fixed weights" in page) is flagged
    if flagged:
        assert f"moved at most |Δs| = {max(search, confirm):.3f}" in page
        assert "effectively fixed weights" in report.dashboard_note(data)


# ----------------------------------------------------------------------------- figures


def test_figure_smoke():
    data = extract(full_storage(optuna.storages.InMemoryStorage(), "figs"), "figs")
    figs = [
        report.fig_comparison(data.comparisons[0]),
        report.fig_best_so_far(report.search_trials(data.arms)),
        report.fig_trial_scores(report.search_trials(data.arms)),
        report.fig_weights(
            report.weights_info(
                data.arms, report.weight_movement(data), report.fixed_reference_weights(data.arms)
            )
        ),
        report.fig_fixed_landscape(report.landscape_info(data.arms["fixed"])),
        report.fig_slices(report.slice_info(data.arms["fixed"])),
        report.fig_importances(report.importances_info(data.arms)),
        report.fig_metric_parts(report.metric_parts_frame(data)),
        report.fig_per_class_f1(data.class_reports()),
        report.fig_confusion("fixed", data.class_reports()["fixed"]),
    ]
    for fig in figs:
        assert isinstance(fig, go.Figure) and len(fig.data) >= 1
        fig.to_json()
    ref = report.fixed_reference_weights(data.arms)
    best = data.arms["fixed"].best
    assert ref["kl"] == pytest.approx(best.params["kl_weight"])
    # the best-so-far curve never decreases
    y = np.array(figs[1].data[0].y, dtype=float)
    assert np.all(np.diff(y) >= 0)


def test_figures_return_none_without_data():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "bare", "uncertainty", states=("FAIL",))
    data = extract(storage, "bare")
    assert report.fig_best_so_far(report.search_trials(data.arms)) is None
    assert report.fig_weights(report.weights_info(data.arms)) is None
    assert report.fig_importances(report.importances_info(data.arms)) is None
    assert report.fig_metric_parts(report.metric_parts_frame(data)) is None
    assert report.fig_per_class_f1(data.class_reports()) is None
    # the failed trial is still shown
    assert isinstance(report.fig_trial_scores(report.search_trials(data.arms)), go.Figure)


def test_weights_figure_shares_a_log_axis_and_draws_the_references():
    data = extract(full_storage(optuna.storages.InMemoryStorage(), "wf"), "wf")
    info = report.weights_info(
        data.arms, report.weight_movement(data), report.fixed_reference_weights(data.arms)
    )
    fig = report.fig_weights(info)
    layout = fig.layout
    assert layout.yaxis.type == "log" and layout.yaxis2.type == "log"  # one panel per learned arm
    assert layout.yaxis2.matches == "y"  # the same axis: weights compare across arms
    drawn = [t for t in fig.data if t.x and t.x[0] is not None]
    assert {t.xaxis for t in drawn} == {"x", "x2"}
    # every (term, fold) line of a panel: the term's colour, the fold's own dash and marker
    unc = [t for t in drawn if t.xaxis == "x" and t.name.startswith("multiclass, fold")]
    assert len(unc) == K and len({t.line.color for t in unc}) == 1
    assert len({(t.line.dash, t.marker.symbol) for t in unc}) == K
    arm_colors = set(figures_mod.ARM_COLORS.values())
    assert not any(t.line.color in arm_colors for t in drawn if t.line.color)
    # the uncertainty weights against 1/L (dotted, same colour); none on the direct panel
    refs = [t for t in drawn if t.name.startswith("1/L ")]
    assert len(refs) == K * len(TERMS) and {t.xaxis for t in refs} == {"x"}
    assert all(t.line.dash == "dot" for t in refs)
    ref = next(t for t in refs if t.name == "1/L multiclass, fold 0")
    assert ref.line.color == unc[0].line.color
    loss = data.arms["uncertainty"].best.folds[0].loss_trajectory["multiclass"]
    assert list(ref.y) == pytest.approx([1 / v for v in loss])
    # how far the weights moved, in words
    assert "max |Δs| 0.800 (search + confirm)" in layout.annotations[0].text
    text, _ = render_html(data)
    assert "uncertainty: the learned log-weights moved at most |Δs| = 0.800" in text
    assert "direct: the learned log-weights moved at most |Δs| = 0.500" in text


def test_learned_arm_names_are_escaped_in_the_headline(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    add_confirm_study(storage, "xss", arms=("fixed", EVIL), scores=noisy_scores(0.01, 0.005))
    data = extract(storage, "xss")
    assert [(c.a, c.b) for c in data.comparisons] == [("fixed", EVIL)]
    text, _ = render_html(data)
    assert EVIL not in text and "&lt;script&gt;window.__pwned=1&lt;/script&gt; − fixed = " in text
    assert EVIL not in report.dashboard_note(data)


# ----------------------------------------------------------------------------- every arm against fixed


@pytest.fixture
def all_arms(monkeypatch) -> report.ReportData:
    """Every arm's search study and a confirmation of all of them (fixed: 0.70, the others around it)."""
    for arm, base in MORE_BASE.items():
        monkeypatch.setitem(BASE, arm, base)
    return confirmed("all", arms=ALL_ARMS)


def test_every_arm_against_fixed_in_one_sorted_table(all_arms):
    data = all_arms
    assert [(c.a, c.b) for c in data.comparisons] == [("fixed", b) for b in ALL_ARMS[1:]]
    assert all(c.n_adjusted == 7 and c.p_adjusted is not None for c in data.comparisons)
    page = headline_html(data)
    table = page[page.index('<table class="summary">') : page.index("</table>", page.index('"summary"'))]
    shown = re.findall(r"■</span> ([a-z_]+)</td>", table)
    by_diff = sorted(data.comparisons, key=lambda c: -c.comparison.mean_diff)
    assert shown == [c.b for c in by_diff]  # best difference first
    for c in data.comparisons:
        assert f"{c.comparison.mean_diff:+.4f}" in table
        assert fmt.p_value(c.p_adjusted).replace("<", "&lt;") in table
    assert table.count('class="reference"') == 1  # equal: what no tuning gives
    assert "learned IMTL-L scales (Liu et al. 2021)" in page  # the arms table cites each scheme


def test_forest_plot_of_every_arm_with_the_rope_and_no_tuning(all_arms):
    info = report.forest_info(all_arms.comparisons)
    assert [r.arm for r in info.rows] == [
        c.b for c in sorted(all_arms.comparisons, key=lambda c: -c.comparison.mean_diff)
    ]
    assert info.reference.arm == "equal" and info.rope == 0.005
    fig = report.fig_forest(info)
    (points,) = fig.data
    assert list(points.y) == [r.arm for r in info.rows]
    assert list(points.error_x.array) == pytest.approx([r.high - r.mean for r in info.rows])
    rope = [sh for sh in fig.layout.shapes if sh.type == "rect"]
    assert len(rope) == 1 and (rope[0].x0, rope[0].x1) == (-0.005, 0.005)
    equal_line = [sh for sh in fig.layout.shapes if sh.type == "line" and sh.line.dash == "dash"]
    assert len(equal_line) == 1 and equal_line[0].x0 == pytest.approx(info.reference.mean)
    assert [a.text for a in fig.layout.annotations] == ["equal: what no tuning gives"]
    # where scores are plotted, equal is the dashed reference line beside each other comparison
    unc = next(c for c in all_arms.comparisons if c.b == "uncertainty")
    ref = report.figure_data.reference_score(all_arms, unc)
    eq = all_arms.confirm.scores[all_arms.confirm.scores["arm"] == "equal"]["score"]
    assert ref == pytest.approx(eq.mean())
    fig = report.fig_comparison(unc, ref)
    assert any("equal: what no tuning gives" in a.text for a in fig.layout.annotations)
    equal = next(c for c in all_arms.comparisons if c.b == "equal")
    assert report.figure_data.reference_score(all_arms, equal) is None  # not beside itself
    text, figs = render_html(all_arms)
    keys = [k for k, _ in figs]
    assert "forest" in keys and keys.index("forest") < keys.index("compare-fixed-uncertainty")


def test_weight_trajectories_of_every_arm_but_fixed_and_equal(all_arms):
    data = all_arms
    moved = report.weight_movement(data)
    assert set(moved) == {"uncertainty", "direct", "dwa", "famo", "imtl_l"}  # equal and rlw learn nothing
    info = report.weights_info(data.arms, moved, report.fixed_reference_weights(data.arms))
    assert [p.arm for p in info.panels] == ["uncertainty", "direct", "dwa", "famo", "imtl_l", "rlw"]
    assert info.equal
    # the 1/L reference where it is the stationary weight: uncertainty and IMTL-L
    assert [p.arm for p in info.panels if p.optimum] == ["uncertainty", "imtl_l"]
    fig = report.fig_weights(info)
    layout = fig.layout
    # one axis for every panel: every y axis matches the same one (plotly anchors them at the bottom left)
    matches = [layout[f"yaxis{i}"].matches for i in ("", 2, 3, 4, 5, 6)]
    assert matches.count(None) == 1 and len(set(matches) - {None}) == 1
    assert all(layout[f"yaxis{i}"].type == "log" for i in ("", 2, 3, 4, 5, 6))
    refs = {t.xaxis for t in fig.data if t.name.startswith("1/L ")}
    assert refs == {"x", "x5"}  # uncertainty and imtl_l
    equal_lines = [t for t in fig.data if t.name == "equal arm: every weight 1"]
    assert len(equal_lines) == 6 and all(list(t.y) == [1.0, 1.0] for t in equal_lines)
    titles = [a.text for a in layout.annotations]
    assert titles[-1] == "rlw: best trial #4<br>set by rule, nothing learned"
    text, _ = render_html(data)
    assert "the dashed black line is the equal arm, every weight 1" in text


def test_two_arms_have_no_every_arm_table_and_no_forest():
    data = confirmed("two")
    text, figs = render_html(data)
    assert 'class="summary"' not in text and "Every arm at a glance" not in text
    assert "forest" not in [k for k, _ in figs]
    assert report.forest_info(data.comparisons) is not None  # the record exists; the page leaves it out


# ----------------------------------------------------------------------------- HTML (static checks)


def test_write_report_full(tmp_path, sqlite_url):
    full_storage(sqlite_url, "full")
    out = write_report(
        sqlite_url, "full", tmp_path / "sub" / "r.html", command=f"cmi-study report --storage {sqlite_url}"
    )
    text = out.read_text(encoding="utf-8")
    assert text.count(get_plotlyjs()[:300]) == 1  # plotly.js embedded exactly once
    rest = text.replace(get_plotlyjs(), "")
    assert "<script src=" not in rest and "cdn.plot.ly" not in rest  # nothing to fetch: opens offline
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in text
    n = int(text.split('data-figures="')[1].split('"')[0])
    assert n == text.count('class="plotly-graph-div"') >= 12
    assert "practically equivalent" in text or "better" in text
    assert PASSWORD not in text
    assert "ab12cd34ef56" in text and "torch" in text
    assert "CUDA out of memory &lt;b&gt;" in text  # user strings escaped inside figure hovers too

    # dashboard: verdict note and key figures on every study
    from optuna_dashboard import get_note

    storage = optuna.storages.get_storage(sqlite_url)

    def system_attrs(name: str) -> dict:
        return storage.get_study_system_attrs(storage.get_study_id_from_name(name))

    for name in ("full-fixed", "full-uncertainty", "full-direct", "full-confirm"):
        note = get_note(optuna.load_study(study_name=name, storage=storage))
        assert "uncertainty vs fixed" in note and "Full report" in note
        assert "95% interval [" in note and f"Scored on the {len(HOLDOUT)} held-out subjects" in note
        assert "No score looked at its own validation fold" in note
        attrs = system_attrs(name)
        assert any(k.startswith("dashboard:plot_data:cmi-report-compare-fixed-uncertainty:") for k in attrs)
    unc = system_attrs("full-uncertainty")
    assert any(k.startswith("dashboard:plot_data:cmi-report-weights:") for k in unc)
    # re-running overwrites instead of piling up graphs
    write_report(sqlite_url, "full", tmp_path / "r2.html")
    attrs = system_attrs("full-fixed")
    ids = {k.split(":")[2] for k in attrs if k.startswith("dashboard:plot_data:")}
    # two comparisons, their forest plot and the two search plots
    assert all(i.startswith("cmi-report-") for i in ids) and len(ids) == 5 and "cmi-report-forest" in ids


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("one-arm", "Only one arm"),
        ("no-confirm", "No confirmation study"),
        ("all-bad", "no complete trial"),
        ("confirm-only", "No arm study"),
    ],
)
def test_write_report_degrades(tmp_path, case, expect):
    storage = optuna.storages.InMemoryStorage()
    if case == "one-arm":
        add_arm_study(storage, "d", "uncertainty")
    elif case == "no-confirm":
        add_arm_study(storage, "d", "fixed")
        add_arm_study(storage, "d", "direct")
    elif case == "all-bad":
        add_arm_study(storage, "d", "fixed", states=("PRUNED", "FAIL"))
        add_arm_study(storage, "d", "uncertainty", states=("FAIL", "RUNNING"))
    elif case == "confirm-only":
        add_confirm_study(storage, "d")
    text = write_report(storage, "d", tmp_path / "r.html").read_text(encoding="utf-8")
    assert expect in text
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in text


def add_evil_strings(study: optuna.Study) -> None:
    """A command and a fail reason with a script in them, as a hand-edited storage could hold."""
    record = records.read_arm_study(study).model_copy(
        update={"command": f"cmi-study run --study-name {EVIL}"}
    )
    records.write_study(study, record)
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=records.trial_attrs(fail_reason=EVIL)))


def test_malicious_study_name_is_escaped(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    add_evil_strings(add_arm_study(storage, EVIL, "fixed"))
    text = write_report(storage, EVIL, tmp_path / "r.html").read_text(encoding="utf-8")
    assert EVIL not in text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    # the command in the reproducibility table, escaped by the template
    assert "<code>cmi-study run --study-name &lt;script&gt;window.__pwned=1&lt;/script&gt;</code>" in text
    # the fail reason in the trial-scores hover text (plotly renders tags there; its JSON writes / as \u002f)
    assert "trial #8 failed: &lt;script&gt;window.__pwned=1&lt;" in text


def test_sections_are_numbered_from_the_list(monkeypatch):
    from study.report import html

    assert tuple(f"{i}. {s.title}" for i, s in enumerate(SECTIONS, 1)) == SECTION_TITLES
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "sec", "fixed")
    data = extract(storage, "sec")
    last, first = SECTIONS[-1], SECTIONS[0]
    monkeypatch.setattr(html, "SECTIONS", (last, first))
    text, _ = render_html(data)
    assert f"<h2>1. {last.title}</h2>" in text and f"<h2>2. {first.title}</h2>" in text
    assert '<section id="1-reproducibility">' in text and '<a href="#2-headline">2. Headline</a>' in text
    assert text.count("<h2>") == 2 and "Arms, budgets and compute" in text


# ----------------------------------------------------------------------------- HTML in Chromium


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"headless Chromium not installed (looked for {CHROMIUM} and {CHROMEDRIVER})")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1300,1000",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def _open(driver, path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop messages of earlier pages
    driver.get(path.resolve().as_uri())
    n = int(driver.find_element("css selector", "body").get_attribute("data-figures"))
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script(
            "return document.querySelectorAll('.js-plotly-plot .main-svg').length > 0 || arguments[0] == 0", n
        )
    )


def _rendered(driver) -> int:
    return driver.execute_script(
        "return [...document.querySelectorAll('.js-plotly-plot')].filter(e => e.querySelector('svg.main-svg')).length"
    )


@pytest.mark.slow
def test_report_renders_in_chromium(tmp_path, browser):
    storage = full_storage(optuna.storages.InMemoryStorage(), EVIL)
    add_evil_strings(optuna.load_study(study_name=f"{EVIL}-fixed", storage=storage))
    out = write_report(storage, EVIL, tmp_path / "report.html")
    _open(browser, out)
    n = int(browser.find_element("css selector", "body").get_attribute("data-figures"))
    assert n >= 12
    assert _rendered(browser) == n
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    headings = [h.text for h in browser.find_elements("css selector", "h2")]
    assert headings == list(SECTION_TITLES)
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert EVIL in browser.find_element("css selector", "h1").text  # shown as text, not run
    assert EVIL in browser.title
    verdict = browser.find_element("css selector", ".verdict")
    assert "95% interval [" in verdict.text and "held-out subjects" in verdict.text
    assert "No score looked at its own validation fold" in verdict.text
    subjects = verdict.find_element("css selector", "details.subjects p")
    assert not subjects.is_displayed()  # the list is folded away until asked for
    verdict.find_element("css selector", "details.subjects summary").click()
    assert subjects.is_displayed() and HOLDOUT[0] in subjects.text
    holm_note = browser.find_element("css selector", "p.holm").text
    assert "Holm-adjusted for 2 comparisons" in holm_note


@pytest.mark.slow
def test_degraded_report_renders_in_chromium(tmp_path, browser):
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "deg", "fixed", states=("PRUNED", "FAIL", "RUNNING"))
    out = write_report(storage, "deg", tmp_path / "deg.html")
    _open(browser, out)
    n = int(browser.find_element("css selector", "body").get_attribute("data-figures"))
    assert _rendered(browser) == n == 1  # only the trial-scores plot has something to show
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert [h.text for h in browser.find_elements("css selector", "h2")] == list(SECTION_TITLES)
    assert "Only one arm" in browser.find_element("css selector", "body").text
