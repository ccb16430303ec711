import dataclasses

import numpy as np
import optuna
import pytest
import pytorch_lightning as pl
import torch

import cmi_model.module as module_mod
from cmi_model.config import MODEL_PRESETS, DataConfig, LossConfig, TrainConfig
from cmi_model.data import load_dir
from cmi_model.dataset import FoldCache
from cmi_model.errors import TrainingDiverged
from cmi_model.folds import split_subjects, subject_folds, subjects_of
from cmi_model.metric import Score
from cmi_model.synthetic import generate
from cmi_model.train import fit_fold
from study.objective import CVObjective
from study.settings import StudySection, build_settings


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("train-data")
    generate(out, n_subjects=6, seed=5)
    data = load_dir(out, cache_dir=None)
    return data, subject_folds(data, 3, seed=0)[0]


class KeepMetrics(pl.Callback):
    def __init__(self):
        self.keys: set[str] = set()

    def on_train_epoch_end(self, trainer, module):
        self.keys |= set(trainer.callback_metrics)

    def on_validation_epoch_end(self, trainer, module):
        self.keys |= set(trainer.callback_metrics)


def fit(dataset, loss: LossConfig | None = None, epochs=6, callbacks=None, seed=0, fold_cache=None, **train):
    data, (tr, va) = dataset
    return fit_fold(
        data,
        tr,
        va,
        model_cfg=MODEL_PRESETS["tiny"],
        loss_cfg=loss or LossConfig(),
        data_cfg=DataConfig(max_len=64),
        train_cfg=TrainConfig(
            **{"max_epochs": epochs, "patience": epochs, "seed": seed, "lr": 3e-3, "warmup_epochs": 0.5}
            | train
        ),
        callbacks=callbacks,
        fold_cache=fold_cache,
    )


INNER = {"early_stopping": "inner", "inner_fraction": 0.34}  # 4 training subjects: 1-2 set aside
TERMS = ("multiclass", "binary", "nine_class", "kl")


def test_tiny_fit_scores_clearly_above_chance_and_logs_every_key(dataset):
    keep, states = KeepMetrics(), KeepStates()
    r = fit(dataset, LossConfig(auto_weighting="uncertainty"), callbacks=[keep, states])
    # Random guessing scores ~0.3 and always predicting one target gesture ~0.37; learning is far above.
    assert r.score > 0.5, r
    assert 0 <= r.binary_f1 <= 1 and 0 <= r.macro_f1 <= 1
    assert r.score == pytest.approx((r.binary_f1 + r.macro_f1) / 2)
    data, (tr, va) = dataset
    assert r.val_probs.shape == (len(va), 18) and np.allclose(r.val_probs.sum(1), 1, atol=1e-4)
    np.testing.assert_array_equal(r.val_indices, np.sort(va))
    expected = {"train/loss"} | {f"train/weight_{t}" for t in TERMS} | {f"train/s_{t}" for t in TERMS}
    expected |= {f"train/loss_{t}" for t in TERMS}
    assert expected <= keep.keys, expected - keep.keys
    # The default rule has no validation loop: the validation fold is seen once, after training.
    assert not {k for k in keep.keys if k.startswith(("val/", "stop/"))}, keep.keys
    assert (r.rule, r.best_epoch, r.epochs, r.stop_subjects) == ("last_epoch", 5, 6, [])
    assert same(states.predicted, states.epochs[-1])  # the last epoch's model is the one scored
    assert r.val_subjects == subjects_of(data, va) and not set(r.val_subjects) & set(subjects_of(data, tr))
    for trajectory in (r.weight_trajectory, r.loss_trajectory):
        assert set(trajectory) == set(TERMS) and all(len(v) == r.epochs for v in trajectory.values())
    assert r.weights == {t: r.weight_trajectory[t][-1] for t in TERMS}
    # The terms' training losses fall (the KL term may rise from ~0 as the heads sharpen).
    assert all(r.loss_trajectory[t][-1] < r.loss_trajectory[t][0] for t in ("multiclass", "nine_class"))
    assert r.learned_start == {f"s_{t}": 0.0 for t in TERMS} and set(r.learned_end) == set(r.learned_start)
    assert r.max_abs_delta_s == pytest.approx(max(abs(v) for v in r.learned_end.values()))
    assert r.max_abs_delta_s > 0


class KeepStates(pl.Callback):
    """The network's weights at the end of each epoch and when the validation fold is predicted."""

    def __init__(self):
        self.epochs: list[dict] = []
        self.predicted: dict | None = None

    @staticmethod
    def copy(module):
        return {k: v.clone() for k, v in module.network.state_dict().items()}

    def on_train_epoch_end(self, trainer, module):
        self.epochs.append(self.copy(module))

    def on_predict_start(self, trainer, module):
        self.predicted = self.copy(module)


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_inner_rule_chooses_the_epoch_on_training_subjects_only(dataset, monkeypatch):
    # The stop subjects' score peaks at the second epoch (whatever the model): with patience 2
    # training stops after the fourth, and the second epoch's weights are the ones scored.
    stop_scores = iter([0.5, 0.7, 0.6, 0.6, 0.9, 0.9])
    monkeypatch.setattr(module_mod, "score_indices", lambda y, p: Score(next(stop_scores), 0.0, 0.0))
    keep, states = KeepMetrics(), KeepStates()
    loss = LossConfig(auto_weighting="uncertainty")
    r = fit(dataset, loss, epochs=6, callbacks=[keep, states], patience=2, **INNER)
    data, (tr, va) = dataset
    assert (r.rule, r.best_epoch, r.epochs) == ("inner", 1, 4)
    assert {"stop/score", "stop/loss"} <= keep.keys and not {k for k in keep.keys if k.startswith("val/")}
    assert r.stop_subjects and set(r.stop_subjects) < set(subjects_of(data, tr))
    assert not set(r.stop_subjects) & set(r.val_subjects) and r.val_subjects == subjects_of(data, va)
    assert r.weights == {t: r.weight_trajectory[t][r.best_epoch] for t in TERMS}
    np.testing.assert_array_equal(r.val_indices, np.sort(va))
    # The chosen epoch's weights are restored before the validation fold is predicted.
    assert len(states.epochs) == r.epochs and same(states.predicted, states.epochs[r.best_epoch])
    assert not same(states.predicted, states.epochs[-1])
    assert r.score == pytest.approx((r.binary_f1 + r.macro_f1) / 2)


@pytest.mark.parametrize("rule", [{}, INNER], ids=["last_epoch", "inner"])
def test_validation_labels_reach_neither_the_model_nor_the_epoch_choice(dataset, rule):
    data, (tr, va) = dataset
    gesture = data.gesture.copy()
    gesture[va] = np.random.default_rng(0).permutation(gesture[va])
    assert (gesture[va] != data.gesture[va]).any()
    shuffled = (dataclasses.replace(data, gesture=gesture), (tr, va))
    loss = LossConfig(auto_weighting="uncertainty")
    a = fit(dataset, loss, epochs=3, patience=1, **rule)
    b = fit(shuffled, loss, epochs=3, patience=1, **rule)
    assert (a.best_epoch, a.epochs, a.stop_subjects) == (b.best_epoch, b.epochs, b.stop_subjects)
    np.testing.assert_array_equal(a.val_indices, b.val_indices)
    np.testing.assert_array_equal(a.val_probs, b.val_probs)
    assert a.learned_end == b.learned_end


def test_learned_log_weights_stay_inside_the_clamp_during_training(dataset):
    loss = LossConfig(auto_weighting="uncertainty", auto_weight_clamp=(-0.05, 0.05), weight_lr_multiplier=100)
    r = fit(dataset, loss, epochs=1)
    assert all(-0.05 - 1e-7 <= v <= 0.05 + 1e-7 for v in r.learned_end.values()), r.learned_end  # float32
    assert any(abs(v) == pytest.approx(0.05) for v in r.learned_end.values()), r.learned_end


@pytest.mark.slow
def test_demo_preset_upper_range_reaches_the_stationary_point_and_the_plan_barely_moves(tmp_path):
    """The demo preset's sizes (the first search fold of 12 synthetic subjects, 8 epochs of ~10
    steps): benchmarks/bench_weights.py measured max |Δs| 0.017 at ×0.1 and 4.1 at ×30."""
    generate(tmp_path, n_subjects=12, seed=0)
    data = load_dir(tmp_path, cache_dir=None)
    tr, va = subject_folds(data, 3, seed=0, subjects=split_subjects(data, 0.25, 3, seed=0).search)[0]
    moved = {}
    for m in (0.1, 30.0):
        r = fit_fold(
            data,
            tr,
            va,
            model_cfg=MODEL_PRESETS["tiny"],
            loss_cfg=LossConfig(auto_weighting="uncertainty", weight_lr_multiplier=m),
            data_cfg=DataConfig(max_len=64, batch_size=64),
            train_cfg=TrainConfig(max_epochs=8, warmup_epochs=0.5, lr=2e-3),
        )
        moved[m] = r.max_abs_delta_s
        if m == 30.0:  # every s_i ends near its stationary point log(last epoch's mean L_i)
            gaps = {t: r.learned_end[f"s_{t}"] - np.log(v[-1]) for t, v in r.loss_trajectory.items()}
            assert all(abs(g) < 0.5 for g in gaps.values()), gaps
    assert moved[0.1] < 0.1 and moved[30.0] >= 0.5, moved


@pytest.mark.parametrize("multiplier,moves", [(0.1, False), (100.0, True)])
def test_weight_lr_multiplier_decides_whether_s_moves(dataset, multiplier, moves):
    # 6 epochs × 4 steps at lr 3e-3: the plan's ×0.1 cannot move s by 0.1; the upper part of the range must.
    r = fit(dataset, LossConfig(auto_weighting="uncertainty", weight_lr_multiplier=multiplier))
    assert (r.max_abs_delta_s >= 0.5) if moves else (r.max_abs_delta_s < 0.1), r.max_abs_delta_s


def test_fit_is_deterministic_on_cpu(dataset):
    a, b = fit(dataset, epochs=2), fit(dataset, epochs=2)
    assert a.score == b.score
    np.testing.assert_array_equal(a.val_probs, b.val_probs)
    # The fixed arm learns no weights.
    assert a.learned_start == a.learned_end == {} and a.max_abs_delta_s is None


def test_nan_loss_raises_training_diverged(dataset, monkeypatch):
    real = module_mod.loss_terms

    def poisoned(*args, **kwargs):
        terms = real(*args, **kwargs)
        terms["binary"] = terms["binary"] * torch.tensor(float("nan"))
        return terms

    monkeypatch.setattr(module_mod, "loss_terms", poisoned)
    with pytest.raises(TrainingDiverged, match="loss became nan"):
        fit(dataset, epochs=1)


def test_fold_cache_leaves_the_result_unchanged(dataset):
    data, (tr, va) = dataset
    cache = FoldCache()
    kw = {"epochs": 1, "loss": LossConfig(auto_weighting="uncertainty")}
    plain = fit(dataset, **kw)
    first, again = fit(dataset, fold_cache=cache, **kw), fit(dataset, fold_cache=cache, **kw)
    assert (cache.builds, cache.hits) == (2, 2)  # training and validation set, then both reused
    for r in (first, again):
        assert r.score == plain.score and r.learned_end == plain.learned_end
        np.testing.assert_array_equal(r.val_probs, plain.val_probs)
        assert r.loss_trajectory == plain.loss_trajectory
    assert set(first.phase_seconds) == {"prepare", "setup", "train", "predict"}


def test_every_trial_of_a_study_reuses_the_prepared_folds(dataset):
    """CVObjective: K folds prepared (training + validation set each) by the first trial only."""
    data, _ = dataset
    settings = build_settings("tiny", overrides={"study": {"pruner": "none"}})
    folds = subject_folds(data, 2, seed=0)
    objective = CVObjective("fixed", settings, data, folds, n_total=3)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=3)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert (objective.fold_cache.builds, objective.fold_cache.hits) == (2 * len(folds), 2 * 2 * len(folds))


def test_default_pruner_keeps_the_top_quarter_at_each_fold_from_the_third_trial():
    """The search's default (benchmarks/bench_pruners.py): a trial whose fold-k score is not in
    the top quarter of the complete trials' fold-k scores stops, from the 3rd trial and the 1st
    fold on; median keeps the top half; Wilcoxon cannot prune 3 folds."""
    from study.arm_studies import make_pruner

    assert StudySection().pruner == "percentile" and build_settings("full").study.pruner == "percentile"

    def run(kind: str, folds: list[list[float]]) -> list[optuna.trial.TrialState]:
        study = optuna.create_study(direction="maximize", pruner=make_pruner(kind))
        for scores in folds:
            trial = study.ask()
            for k, s in enumerate(scores):
                trial.report(s, k)
                if trial.should_prune():
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    break
            else:
                study.tell(trial, float(np.mean(scores)))
        return [t.state for t in study.trials]

    C, P = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED
    # Fold-0 scores of the complete trials before the last one: 0.5, 0.3, 0.6 (median 0.5, top
    # quarter from 0.55): 0.52 is above the median but not in the top quarter.
    trials = [[0.5] * 3, [0.3] * 3, [0.2, 0.6, 0.6], [0.6] * 3, [0.52] * 3]
    assert run("percentile", trials) == [C, C, P, C, P]  # the 2nd is below nothing yet: startup
    assert run("median", trials) == [C, C, P, C, C]
    assert run("wilcoxon", trials) == [C] * 5
    assert run("none", trials) == [C] * 5
