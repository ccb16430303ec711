"""Nested evaluation: outer folds that hold out every subject once, a search per (arm, outer fold),
nothing crossing outer folds (checked on the stored records), one outer fold at a time giving what
all at once gives, and the report's verdict about the procedure on every subject."""

from __future__ import annotations

import shutil

import numpy as np
import optuna
import pandas as pd
import pytest
from helpers import sqlite_url
from optuna.trial import TrialState, create_trial
from scipy.stats import f_oneway

from cmi_model.data import load_dir
from cmi_model.errors import InputError
from cmi_model.folds import outer_split
from cmi_model.synthetic import generate
from study import nesting, records
from study.arm_studies import score_settings
from study.cli import main
from study.evidence_plan import evidence_plan
from study.report.analyse import analyse
from study.report.nested import search_spread
from study.report.read import read
from study.settings import build_settings
from study.subject_level import subject_comparison

NESTED = ["--preset", "tiny", "--outer-folds", "3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("outer") / "d"
    generate(out, n_subjects=9, seed=4)
    return load_dir(out)


def test_outer_folds_hold_out_every_subject_exactly_once(data):
    splits = [outer_split(data, 3, k, n_folds=2, seed=7) for k in (1, 2, 3)]
    held = [s.holdout for s in splits]
    assert sorted(s for h in held for s in h) == sorted(np.unique(data.subject).tolist())
    for s in splits:
        assert not set(s.search) & set(s.holdout)
        assert set(s.search) | set(s.holdout) == set(np.unique(data.subject).tolist())
    assert [outer_split(data, 3, k, 2, seed=7).holdout for k in (1, 2, 3)] == held  # one draw per seed
    assert [outer_split(data, 3, k, 2, seed=8).holdout for k in (1, 2, 3)] != held


@pytest.mark.parametrize(
    "k, n_outer, n_folds, words",
    [
        (0, 3, 2, "outer-fold 0"),
        (4, 3, 2, "3 outer folds"),
        (1, 10, 2, "at least 10 subjects"),
        (1, 3, 4, "fewer than"),
    ],
)
def test_impossible_outer_folds_are_input_errors(data, k, n_outer, n_folds, words):
    with pytest.raises(InputError, match=words):
        outer_split(data, n_outer, k, n_folds, seed=0)


def test_one_held_out_set_keeps_the_score_settings_older_studies_were_made_with():
    """A study made before outer folds existed must still accept its own workers: with one
    held-out set no key is added, with outer folds the hold-out share makes way for them."""
    info = records.DataInfo(fingerprint="f")
    fp32 = {"train": {"precision": "32-true"}}
    one = score_settings("fixed", build_settings("tiny", overrides=fp32), info)
    assert "study.holdout" in one and not any("outer" in k for k in one)
    nested = score_settings(
        "fixed", build_settings("tiny", overrides=fp32 | {"study": {"outer_folds": 3}}), info, 2
    )
    assert nested["study.outer_folds"] == 3 and nested["study.outer_fold"] == 2
    assert "study.holdout" not in nested


def _run(url: str, name: str, *extra: str) -> None:
    assert main(["run", *NESTED, "--storage", url, "--study-name", name, *extra]) == 0


def _confirm(url: str, name: str, *extra: str) -> None:
    assert main(["confirm", "--storage", url, "--study-name", name, *extra]) == 0


def _trials(url: str, name: str) -> dict[str, list]:
    """Every study of the run: its finished trials' parameters and values, in order."""
    out = {}
    for study_name in sorted(optuna.get_all_study_names(url)):
        if study_name.startswith(f"{name}-"):
            study = optuna.load_study(study_name=study_name, storage=url)
            out[study_name.removeprefix(name)] = [
                (t.params, t.value) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            ]
    return out


@pytest.fixture(scope="module")
def nested_run(tmp_path_factory):
    """`run --outer-folds 3` and `confirm`, all outer folds at once (tiny preset: 6 subjects)."""
    url = sqlite_url(tmp_path_factory.mktemp("nested") / "n.db")
    _run(url, "n")
    _confirm(url, "n")
    return url


@pytest.mark.slow
def test_every_subject_is_held_out_once_per_seed_with_both_arms_scored(nested_run):
    assert records.outer_folds_in("n", optuna.get_all_study_names(nested_run)) == [1, 2, 3]
    data = read(nested_run, "n")
    scores = data.confirm.subject_scores
    subjects = data.data_info().n_subjects
    assert scores["subject"].nunique() == subjects == 6
    # once per (arm, seed): each subject held out in exactly one outer fold, scored in one fold there
    counts = scores.groupby(["arm", "seed", "subject"]).size()
    assert set(counts) == {1}
    assert len(counts) == 2 * len(data.confirm.seeds) * subjects
    assert scores.groupby("subject")["outer"].nunique().max() == 1
    report = analyse(data)
    (verdict,) = report.verdicts
    assert verdict.subjects_kind == "outer" and len(verdict.subjects) == 6
    assert verdict.cmp.subjects.n_subjects == 6 and verdict.outer_folds == 3 == verdict.n_outer
    assert {(p.outer, p.arm) for p in report.picks} == {
        (k, a) for k in (1, 2, 3) for a in ("fixed", "uncertainty")
    }


@pytest.mark.slow
def test_no_information_crosses_outer_folds_on_the_stored_records(nested_run, tmp_path):
    found = nesting.check(optuna.storages.RDBStorage(nested_run), "n")
    assert found.problems == () and found.outer_folds == (1, 2, 3)
    assert found.unrecorded == 0 and found.folds > found.trials > 0
    assert sorted(s for h in found.held_out.values() for s in h) == sorted(
        read(nested_run, "n").confirm.record.holdout_subjects
    )
    # A trial of outer fold 2's search that trained on one of its held-out subjects is found.
    db = tmp_path / "crossed.db"
    shutil.copy(nested_run.removeprefix("sqlite:///"), db)
    url = sqlite_url(db)
    victim = found.held_out[2][0]
    fold = records.FoldRecord(score=0.5, train_subjects=[victim], val_subjects=[])
    study = optuna.load_study(study_name="n-outer2-fixed", storage=url)
    study.add_trial(create_trial(value=0.5, user_attrs=records.trial_attrs(folds=[fold])))
    crossed = nesting.check(optuna.storages.RDBStorage(url), "n")
    assert (
        len(crossed.problems) == 1 and victim in crossed.problems[0] and "outer fold 2" in crossed.problems[0]
    )
    assert any("Information crossed outer folds" in w for w in read(url, "n").warnings())


@pytest.mark.slow
def test_one_outer_fold_at_a_time_ends_where_all_at_once_does(nested_run, tmp_path):
    url = sqlite_url(tmp_path / "parts.db")
    _run(url, "n", "--outer-fold", "2")
    _confirm(url, "n")  # confirms what exists: outer fold 2
    early = analyse(read(url, "n"))
    assert early.verdicts[0].outer_folds == 1
    assert any("1 of 3 outer folds confirmed" in w for w in early.warnings)
    plans = early.comparisons[0].plan
    assert all(p.subjects == 6 for p in plans) and all("remaining outer folds" in p.note for p in plans)
    for k in ("1", "3"):
        _run(url, "n", "--outer-fold", k)
        _confirm(url, "n", "--outer-fold", k)
    assert _trials(url, "n") == _trials(nested_run, "n")  # same trials, same confirmation scores
    now, before = analyse(read(url, "n")), analyse(read(nested_run, "n"))
    assert now.verdicts[0].cmp.subjects == before.verdicts[0].cmp.subjects  # the same verdict
    assert now.warnings == before.warnings


@pytest.mark.slow
def test_confirm_of_an_outer_fold_never_run_is_one_line(nested_run, tmp_path, capsys):
    url = sqlite_url(tmp_path / "one.db")
    _run(url, "n", "--outer-fold", "1")
    capsys.readouterr()
    assert main(["confirm", "--storage", url, "--study-name", "n", "--outer-fold", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run --outer-fold 3" in err[0]
    # Another outer fold with other settings would not be comparable: refused before it trains.
    assert (
        main(["run", *NESTED, "--storage", url, "--study-name", "n", "--outer-fold", "2", "--epochs", "2"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "outer fold 1" in err[0] and "train.max_epochs" in err[0]
    assert records.outer_folds_in("n", optuna.get_all_study_names(url)) == [1]


def test_one_study_name_holds_one_design(tmp_path, capsys):
    """A name with a one-held-out-set run refuses outer folds and the other way round: confirm and
    report would read one design and leave the other's searches unseen."""
    url = sqlite_url(tmp_path / "mixed.db")
    optuna.create_study(study_name="m-fixed", storage=url)
    optuna.create_study(study_name="o-outer2-confirm", storage=url)
    assert main(["run", *NESTED, "--storage", url, "--study-name", "m"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one held-out set (m-fixed)" in err[0]
    assert main(["run", "--preset", "tiny", "--storage", url, "--study-name", "o"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "outer folds (o-outer2-…)" in err[0]
    assert sorted(optuna.get_all_study_names(url)) == ["m-fixed", "o-outer2-confirm"]


@pytest.mark.slow
def test_outer_folds_confirmed_with_other_seeds_keep_their_common_seeds(nested_run, tmp_path):
    db = tmp_path / "seeds.db"
    shutil.copy(nested_run.removeprefix("sqlite:///"), db)
    url = sqlite_url(db)
    _confirm(url, "n", "--outer-fold", "1", "--seeds", "3")  # a third seed in outer fold 1 only
    data = read(url, "n")
    assert data.confirm.seeds == [1, 2]
    assert any("confirmed with different seeds" in w for w in data.warnings())
    (v,) = analyse(data).verdicts
    assert v.cmp.subjects.n_subjects == 6 and v.cmp.subjects.n_seeds == 2  # no outer fold's subjects lost


@pytest.mark.slow
def test_a_nested_run_without_any_confirmation_trial_still_reports(nested_run, tmp_path):
    from study.report import write_report

    db = tmp_path / "empty.db"
    shutil.copy(nested_run.removeprefix("sqlite:///"), db)
    url = sqlite_url(db)
    for k in (1, 2, 3):  # confirmation studies made but never given a pair
        optuna.delete_study(study_name=f"n-outer{k}-confirm", storage=url)
        optuna.create_study(study_name=f"n-outer{k}-confirm", storage=url)
    out = write_report(url, "n", tmp_path / "empty.html")
    assert "has no finished trial yet" in out.read_text()


def test_an_outer_fold_study_without_its_record_is_not_a_crash(tmp_path):
    url = sqlite_url(tmp_path / "bare.db")
    study = optuna.create_study(study_name="b-outer1-fixed", storage=url)  # its creator died at once
    study.add_trial(create_trial(value=0.5))
    found = nesting.check(optuna.storages.RDBStorage(url), "b")
    assert found.outer_folds == (1,) and found.problems == ()
    assert read(url, "b").outer[0][0] == 1


def test_search_spread_is_scipys_one_way_anova_of_the_subject_means():
    rng = np.random.default_rng(3)
    outer = {f"s{i}": 1 + i % 3 for i in range(12)}
    rows = [(s, seed, 0.5, 0.5 + 0.02 * k + rng.normal(0, 0.01)) for s, k in outer.items() for seed in (1, 2)]
    pairs = pd.DataFrame(rows, columns=["subject", "seed", "a", "b"]).assign(diff=lambda d: d["b"] - d["a"])

    class Part:  # the part of a Studies search_spread reads: each outer fold's held-out subjects
        def __init__(self, held):
            self.confirm = type("C", (), {"record": records.ConfirmStudyRecord(holdout_subjects=held)})()

    studies = type(
        "S", (), {"outer": [(k, Part([s for s, j in outer.items() if j == k])) for k in (1, 2, 3)]}
    )()
    spread = search_spread("fixed", "uncertainty", pairs, studies)
    means = pairs.groupby("subject")["diff"].mean()
    groups = [means[[s for s, j in outer.items() if j == k]].to_numpy() for k in (1, 2, 3)]
    assert spread.p_value == pytest.approx(f_oneway(*groups).pvalue)
    # F = MS_between / MS_within, the component sd² = (MS_between − MS_within)/n0 with n0 = 4 here
    f = f_oneway(*groups).statistic
    assert spread.search_sd**2 == pytest.approx(spread.within_sd**2 * (f - 1) / 4)
    assert spread.per_outer[3][1] == pytest.approx(groups[2].mean())
    assert spread.search_sd > 0.015  # the outer folds differ by 0.02 steps, far beyond the 0.01 noise


def test_the_remaining_outer_folds_are_offered_before_more_seeds():
    rng = np.random.default_rng(0)
    a = pd.DataFrame(
        rng.normal(0.5, 0.05, (6, 3)), index=pd.Index([f"s{i}" for i in range(6)], name="subject")
    )
    a.columns = pd.Index([1, 2, 3], name="seed")
    b = a + rng.normal(0, 0.05, a.shape)
    cmp = subject_comparison(a, b, rope=0.01)
    alone = evidence_plan(cmp)
    more = evidence_plan(cmp, all_subjects=18)
    assert [p.subjects for p in alone] == [6, 6] and [p.subjects for p in more] == [18, 18]
    for p, q in zip(alone, more, strict=True):
        assert "remaining outer folds (18 subjects in all)" in q.note
        # three times the subjects never need more seeds than now
        assert q.seeds_needed is None or p.seeds_needed is None or q.seeds_needed <= p.seeds_needed


@pytest.mark.slow
def test_the_nested_report_renders_in_chromium_with_picks_and_the_crossing_check(
    nested_run, tmp_path, browser
):
    from helpers.page import open_report, rendered

    from study.report import write_report

    out = write_report(nested_run, "n", tmp_path / "n.html")
    open_report(browser, out)
    n = int(browser.find_element("css selector", "body").get_attribute("data-figures"))
    assert n >= 8 and rendered(browser) == n
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    verdict = browser.find_element("css selector", ".verdict").text
    assert "each arm tuned by its own search in each outer fold: 6 of 6 subjects" in verdict
    body = browser.find_element("css selector", "body").text
    assert "Outer folds: what each search picked" in body and "by outer fold:" in body
    assert "nested in 3 outer folds (each subject held out once)" in body
    assert "no information crossed outer folds, checked on the stored records" in body
    picks = browser.find_elements(
        "xpath", "//h3[starts-with(., 'Outer folds')]/following-sibling::table[1]//tbody/tr"
    )
    assert len(picks) == 3 * 2  # each (outer fold, arm)
