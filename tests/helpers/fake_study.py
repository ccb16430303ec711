"""Fake studies for the report's tests: tiny arm and confirmation studies written in the storage
format of :mod:`study.records`, with every trial state, learned-weight trajectories, out-of-fold
predictions and the selection facts of each fold, whose numbers the tests know by construction.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from cmi_model.labels import GESTURES
from cmi_model.weighting import SCHEMES
from study import records
from study.report import analyse, read
from study.report.analyse import Report

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
    "upgrad": ("lr", "weight_decay", "dropout"),
    "pcgrad": ("lr", "weight_decay", "dropout"),
}
BASE = {"fixed": 0.70, "uncertainty": 0.71, "direct": 0.69}
# The arms added with TorchJD (tests of several arms against fixed): not in the default fixtures.
MORE_BASE = {"equal": 0.695, "dwa": 0.708, "famo": 0.686, "imtl_l": 0.713, "rlw": 0.701}
ALL_ARMS = ("fixed", "equal", "uncertainty", "direct", "dwa", "famo", "imtl_l", "rlw")
# Two of the gradient-level arms (tests of the families): not in the default fixtures either.
GRADIENT_BASE = {"upgrad": 0.704, "pcgrad": 0.692}
DEFAULT_STATES = ("COMPLETE",) * 5 + ("PRUNED", "FAIL", "RUNNING")
PASSWORD = "s3cr3t-pw"
EVIL = "<script>window.__pwned=1</script>"
SEARCH_SEED = 42
SUBJECTS = [f"SUBJ_{i:06d}" for i in range(9)]
HOLDOUT = tuple(SUBJECTS[6:])  # the confirmation validates on these only
DELTA = {"uncertainty": 0.8, "direct": 0.5}  # max |Δs| of the learned log-weights within a fold
TERMS = ("multiclass", "binary", "nine_class", "kl")
RATIO = 1 / 8  # n_test/n_train of the confirmation folds: 1 held-out subject vs 6 pool + 2 held-out


def oof_predictions(rng: np.random.Generator, acc: float, n: int = 90) -> dict[str, list[int]]:
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
    learned = SCHEMES[arm].learned if arm in SCHEMES else True  # else rules: no learned_start/end
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


def halves(arm: str, i: int, f: int, s: float) -> tuple[float, float]:
    """The default (binary F1, macro F1) of a fold scoring s: their mean is s."""
    return s + 0.1, s - 0.1


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
    split=halves,
    settings: dict | None = None,
) -> optuna.Study:
    """An arm study written in the storage format of study.records. split(arm, trial index, fold,
    score) gives a fold's (binary F1, macro F1) (None: unrecorded, NaN, as older studies); settings:
    the resolved settings recorded with it (default none)."""
    rng = np.random.default_rng(seed + len(arm))
    pool = [s for s in SUBJECTS if s not in holdout]
    study = optuna.create_study(storage=storage, study_name=f"{name}-{arm}", direction="maximize")
    record = records.ArmStudyRecord(
        arm=arm,
        settings=settings or {},
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
                **_halves(split, arm, i, f, s),
                weights=fold_weights[f],
                weight_trajectory=traj[f],
                epochs=6,
                seconds=10.0 + i,
                **fold_facts(arm, pool[2 * f : 2 * f + 2], pool, rule=rule, delta=delta),
            )
            for f, s in enumerate(scores)
        ]
        ua = records.trial_attrs(folds=folds, device="cpu", oof=oof_predictions(rng, 0.6 + 0.03 * i))
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


def _halves(split, arm: str, i: int, f: int, s: float) -> dict[str, float]:
    if split is None:
        return {}
    b, m = split(arm, i, f, s)
    return {"binary_f1": b, "macro_f1": m}


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
    sources: dict[str, int] | None = None,
    forced: bool | None = None,
    split=halves,
    params: dict[str, dict] | None = None,
) -> optuna.Study:
    """sources: arm → the search trial its pairs re-trained (default: the arm's best, as confirm
    would); forced: the pairs were queued by `confirm --unfinished`; split(arm, seed, fold, score): a
    fold's (binary F1, macro F1), as for add_arm_study; params: arm → the configuration its pairs
    re-trained (default {"lr": 1e-3})."""
    study = optuna.create_study(storage=storage, study_name=f"{name}-confirm", direction="maximize")
    ratio = RATIO if holdout else 1 / (K - 1)
    record = records.ConfirmStudyRecord(
        arms=list(arms), seeds=list(seeds), n_folds=K, holdout_subjects=list(holdout), test_train_ratio=ratio
    )
    records.write_study(study, record)
    rng = np.random.default_rng(7)
    dist = {"arm": CategoricalDistribution(list(arms)), "seed": IntDistribution(0, 2**31 - 1)}
    for arm in arms:
        source = (sources or {}).get(arm, _best_number(storage, f"{name}-{arm}"))
        # A learned arm's effective weights per fold (the frozen configuration is made of them).
        learned = arm in SCHEMES and SCHEMES[arm].learned
        weights = zip(*_weights(arm, {}, n_folds), strict=True) if learned else [({}, {})] * n_folds
        weights = list(weights)
        for seed in seeds:
            values = scores(arm, seed)[:n_folds]
            folds = [
                records.FoldRecord(
                    score=s,
                    **_halves(split, arm, seed, f, s),
                    seconds=20.0,
                    weights=weights[f][0],
                    weight_trajectory=weights[f][1],
                    # one held-out subject per fold: its own score is the fold's
                    subject_scores={
                        holdout[f]: {"score": s, "binary_f1": s + 0.1, "macro_f1": s - 0.1, "n": 30}
                    }
                    if holdout
                    else {},
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
                        arm=arm,
                        seed=seed,
                        folds=folds,
                        params=(params or {}).get(arm, {"lr": 1e-3}),
                        source_trial=source,
                        forced=forced,
                        oof=oof_predictions(rng, 0.7),
                    ),
                )
            )
    return study


def _best_number(storage, study_name: str) -> int | None:
    """The arm study's best trial number, as `confirm` would re-train it (None: no such study)."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return None
    best = records.best_trial(study.get_trials(deepcopy=False))
    return best.number if best is not None else None


# As many complete trials as fANOVA importances need (study.report.studies.MIN_TRIALS_FOR_IMPORTANCES).
ENOUGH_FOR_IMPORTANCES = ("COMPLETE",) * 8 + ("PRUNED", "FAIL", "RUNNING")


def full_storage(
    storage, name: str, arms=("fixed", "uncertainty", "direct"), confirm=True, states=DEFAULT_STATES
):
    """Every arm with complete, pruned, failed and running trials, plus a finished confirmation study."""
    for i, arm in enumerate(arms):
        add_arm_study(storage, name, arm, states, seed=i)
    if confirm:
        add_confirm_study(storage, name, arms=arms)
    return storage


def add_evil_strings(study: optuna.Study) -> None:
    """A command and a fail reason with a script in them, as a hand-edited storage could hold."""
    record = records.read_arm_study(study).model_copy(
        update={"command": f"cmi-study run --study-name {EVIL}"}
    )
    records.write_study(study, record)
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=records.trial_attrs(fail_reason=EVIL)))


def report_of(storage, name: str, *, rope: float | None = None) -> Report:
    """The first two stages of the report: the studies read, then analysed."""
    return analyse.analyse(read.read(storage, name), rope=rope)


def confirmed(name: str, arms=("fixed", "uncertainty"), **confirm) -> Report:
    """Arm studies and a confirmation study, read and analysed; keyword arguments go to
    add_confirm_study (and the rule, delta and holdout to the arm studies too)."""
    storage = optuna.storages.InMemoryStorage()
    shared = {k: confirm[k] for k in ("rule", "holdout") if k in confirm}
    for i, arm in enumerate(a for a in arms if a in ARM_PARAMS):
        add_arm_study(storage, name, arm, seed=i, **shared)
    add_confirm_study(storage, name, arms=arms, **confirm)
    return report_of(storage, name)
