"""Learned weights frozen into the fixed formula (study.frozen): the mapping, which arms get one, the
confirmation queueing its pairs once the learned arm's runs are done, and its rows in the report."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from helpers.fake_study import (
    HOLDOUT,
    _best_number,
    add_arm_study,
    add_confirm_study,
    noisy_scores,
    report_of,
)

from study import frozen, records
from study.confirm import pair_of, queue_frozen
from study.report.analyse import comparison_pairs, label

TRAJ = {
    "multiclass": [1.0, 2.0, 3.0, 5.0],
    "binary": [1.0, 1.0, 1.0, 3.0],
    "nine_class": [1.0, 1.0, 2.0, 4.0],
    "kl": [9.0, 9.0, 9.0, 16.0],
}


def _run(seed=1, source=3, delta=0.5, traj=TRAJ):
    fold = records.FoldRecord(score=0.6, weight_trajectory=traj, max_abs_delta_s=delta)
    params = {"lr": 2e-3, "weight_decay": 1e-4, "dropout": 0.1, "uncertainty_init_value": 0.0}
    return records.TrialRecord(
        arm="uncertainty", seed=seed, folds=[fold, fold], params=params, source_trial=source
    )


def _searched(storage, name: str, arms=("fixed", "uncertainty"), **kwargs) -> dict[str, int]:
    """Fake arm studies of these arms; each arm's best trial number, the source its pairs re-train."""
    for i, arm in enumerate(arms):
        add_arm_study(storage, name, arm, seed=i, **kwargs)
    return {arm: _best_number(storage, f"{name}-{arm}") for arm in arms}


def test_frozen_parameters_are_the_last_epochs_weights_in_the_fixed_formula():
    p = frozen.frozen_params([_run(1), _run(2)])
    # the last quarter of 4 epochs is the last epoch: w = (5, 3, 4, 16); divided by 5 + 3
    assert p == pytest.approx(
        {
            "lr": 2e-3,
            "weight_decay": 1e-4,
            "dropout": 0.1,
            "alpha": 5 / 8,
            "nine_class_loss_weight": 0.5,
            "kl_weight": 2.0,
        }
    )
    assert frozen.moved([_run(delta=0.05), _run(delta=0.3)]) == 0.3
    assert frozen.frozen_params([_run(traj={"multiclass": [1.0]})]) is None  # a term without weights
    assert frozen.frozen_params([_run(source=3), _run(source=4)]) is None  # two source configurations
    assert (
        frozen.freezable("uncertainty") and not frozen.freezable("fixed") and not frozen.freezable("upgrad")
    )
    assert (
        frozen.label("uncertainty") == "fixed@uncertainty"
        and records.source_arm("fixed@uncertainty") == "uncertainty"
    )
    assert (
        frozen.is_frozen("fixed@uncertainty")
        and not frozen.is_frozen("fixed@nothing")
        and not frozen.is_frozen("fixed")
    )


@pytest.mark.parametrize("delta, queued", [(0.5, 3), (0.05, 0)])
def test_confirm_queues_the_frozen_pairs_once_of_an_arm_whose_weights_moved(delta, queued):
    storage = optuna.storages.InMemoryStorage()
    sources = _searched(storage, "fz", delta=delta)
    confirm = add_confirm_study(storage, "fz", delta=delta)
    assert queue_frozen(confirm, sources) == queued  # one per seed, or none: effectively fixed
    assert queue_frozen(confirm, sources) == 0  # already queued
    waiting = confirm.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == queued
    assert {pair_of(t)[1] for t in waiting} == ({0, 1, 2} if queued else set())  # the learned arm's seeds
    for t in waiting:
        arm, seed, source = pair_of(t)
        assert arm == "fixed@uncertainty" and source == sources["uncertainty"]
        assert t.system_attrs["fixed_params"] == {"seed": seed}  # the label says the arm: no parameter
        params = records.read_trial(t).params
        assert 0 < params["alpha"] < 1 and params["lr"] == pytest.approx(1e-3)


def test_the_report_compares_the_frozen_configuration_with_both_its_source_and_fixed():
    storage = optuna.storages.InMemoryStorage()
    source = _searched(storage, "fr")["uncertainty"]
    add_confirm_study(
        storage,
        "fr",
        arms=("fixed", "uncertainty", "fixed@uncertainty"),
        scores=noisy_scores(0.004, 0.002),
        sources={"fixed@uncertainty": source},
        holdout=HOLDOUT,
    )
    rep = report_of(storage, "fr")
    pairs = {(v.cmp.a, v.cmp.b) for v in rep.verdicts}
    assert {
        ("fixed", "fixed@uncertainty"),
        ("uncertainty", "fixed@uncertainty"),
        ("fixed", "uncertainty"),
    } <= pairs
    assert label("fixed@uncertainty") == "fixed at uncertainty's learned weights"
    assert comparison_pairs(["fixed", "uncertainty", "fixed@uncertainty"])[-1] == (
        "uncertainty",
        "fixed@uncertainty",
    )
    assert np.isfinite(
        [v.cmp.primary.mean_diff for v in rep.verdicts if v.cmp.b == "fixed@uncertainty"]
    ).all()


@pytest.mark.parametrize("delta", [0.5, 0.05])
def test_the_report_says_what_was_frozen_or_why_nothing_was(delta, monkeypatch):
    from helpers.fake_study import BASE, GRADIENT_BASE

    from study.report.sentences import frozen_text

    monkeypatch.setitem(BASE, "upgrad", GRADIENT_BASE["upgrad"])
    storage = optuna.storages.InMemoryStorage()
    asked = {"study": {"freeze_learned": True}}
    source = _searched(storage, "fs", ("fixed", "uncertainty", "upgrad"), delta=delta, settings=asked)[
        "uncertainty"
    ]
    arms = ("fixed", "uncertainty", "upgrad") + (("fixed@uncertainty",) if delta > 0.1 else ())
    add_confirm_study(
        storage,
        "fs",
        arms=arms,
        scores=noisy_scores(0.004, 0.002),
        sources={"fixed@uncertainty": source},
        delta=delta,
        params={
            "fixed@uncertainty": {"lr": 1e-3, "alpha": 0.6, "nine_class_loss_weight": 0.4, "kl_weight": 2.5}
        },
    )
    said = frozen_text(report_of(storage, "fs"))
    if delta > 0.1:
        assert said[0].startswith(
            "uncertainty's learned weights frozen into the fixed formula (fixed@uncertainty: alpha"
        )
    else:
        assert said[0].startswith(
            "uncertainty: no frozen configuration: its log-weights moved at most 0.050 (< 0.1)"
        )
    assert said[1].startswith(
        "upgrad: no frozen configuration — its recorded weights are per-step combinations"
    )


def test_the_dashboard_takes_the_frozen_comparisons_figures(tmp_path):
    """A frozen label's "@" is no HTML id: its comparison figures are saved under a sanitised one."""
    from study import report

    url = f"sqlite:///{tmp_path / 'fd.db'}"
    storage = optuna.storages.get_storage(url)
    source = _searched(storage, "fd")["uncertainty"]
    add_confirm_study(
        storage,
        "fd",
        arms=("fixed", "uncertainty", "fixed@uncertainty"),
        scores=noisy_scores(0.004, 0.002),
        sources={"fixed@uncertainty": source},
    )
    report.write_report(url, "fd", tmp_path / "r.html")
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name("fd-confirm"))
    ids = {k.split(":")[2] for k in attrs if k.startswith("dashboard:plot_data:")}
    assert {
        "cmi-report-compare-fixed-fixed-uncertainty",
        "cmi-report-compare-uncertainty-fixed-uncertainty",
    } <= ids


def test_later_seeds_retrain_the_configuration_the_first_frozen_pairs_trained():
    """confirm --seeds adds learned pairs with other weights: their frozen pairs keep the first params."""
    from optuna.trial import TrialState, create_trial

    storage = optuna.storages.InMemoryStorage()
    sources = _searched(storage, "fl")
    confirm = add_confirm_study(storage, "fl")
    assert queue_frozen(confirm, sources) == 3
    first = {records.read_trial(t).params["alpha"] for t in confirm.get_trials(states=(TrialState.WAITING,))}
    t = next(t for t in confirm.get_trials() if records.read_trial(t).arm == "uncertainty")
    attrs = dict(t.user_attrs) | {"seed": 3}
    attrs["fold_weight_trajectory"] = [
        {k: [10 * x for x in v] if k == "multiclass" else v for k, v in traj.items()}
        for traj in attrs["fold_weight_trajectory"]
    ]
    confirm.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            value=t.value,
            params={"arm": "uncertainty", "seed": 3},
            distributions=t.distributions,
            user_attrs=attrs,
        )
    )
    assert (
        frozen.frozen_params(
            [r for r in map(records.read_trial, confirm.get_trials()) if r.arm == "uncertainty"]
        )["alpha"]
        not in first
    )  # the new seed's weights alone would freeze another configuration
    assert queue_frozen(confirm, sources) == 1
    added = [records.read_trial(t) for t in confirm.get_trials(states=(TrialState.WAITING,))]
    assert {r.params["alpha"] for r in added} == first and len(first) == 1


def test_without_freeze_learned_the_report_says_how_to_ask_for_it():
    from study.report.sentences import frozen_text

    storage = optuna.storages.InMemoryStorage()
    _searched(storage, "fo")
    add_confirm_study(storage, "fo")
    (said,) = frozen_text(report_of(storage, "fo"))
    assert said.startswith(
        "No frozen configuration of uncertainty was asked for: with `[study] freeze_learned = true`"
    )


@pytest.mark.slow
def test_a_queued_frozen_pair_trains_the_fixed_arm_under_its_label(tmp_path):
    """End to end on the tiny preset: the frozen pairs of the real uncertainty runs train the fixed
    arm at those weights, are recorded under fixed@uncertainty and compared with both arms."""
    from helpers import sqlite_url

    from study.cli import main
    from study.report.analyse import analyse
    from study.report.read import read

    url = sqlite_url(tmp_path / "e.db")
    assert main(["run", "--storage", url, "--study-name", "e", "--preset", "tiny", "--workers", "1"]) == 0
    assert main(["confirm", "--storage", url, "--study-name", "e"]) == 0
    confirm = optuna.load_study(study_name="e-confirm", storage=url)
    learned = [r for r in map(records.read_trial, confirm.trials) if r.arm == "uncertainty"]
    params = frozen.frozen_params(learned)  # the real runs record every term's weight trajectory
    assert params is not None and 0 < params["alpha"] < 1
    for r in learned:
        attrs = records.trial_attrs(arm="fixed@uncertainty", source_trial=r.source_trial, params=params)
        confirm.enqueue_trial({"seed": r.seed}, user_attrs=attrs)
    assert main(["confirm", "--storage", url, "--study-name", "e"]) == 0
    done = [
        t for t in optuna.load_study(study_name="e-confirm", storage=url).trials if t.state.name == "COMPLETE"
    ]
    mine = [t for t in done if records.read_trial(t).arm == "fixed@uncertainty"]
    assert len(mine) == len(learned) == 2
    assert all(records.read_trial(t).params == params and "arm" not in t.params for t in mine)
    pairs = {(v.cmp.a, v.cmp.b) for v in analyse(read(url, "e")).verdicts}
    assert {("fixed", "fixed@uncertainty"), ("uncertainty", "fixed@uncertainty")} <= pairs
