"""Who trains and who validates: subjects, never sequences, are split.

- `split_subjects`: once per study, a search pool and held-out subjects (same for every arm
  and worker). The search tunes on the pool only; the confirmation validates on held-out
  subjects only, so picking the best of many configurations cannot flatter its score.
- `outer_split`: nested evaluation: outer fold k's subjects are held out and the other outer
  folds are the search pool, so over the K outer folds every subject is held out exactly once.
- `subject_folds`: subject-grouped, gesture-stratified K-fold over a set of subjects.
- `holdout_folds`: the confirmation's folds: fold k validates on the k-th slice of the
  held-out subjects and trains on the pool plus the other slices.
- `inner_split`: subjects of a training fold set aside to choose an epoch (early stopping)
  without looking at the fold's own validation subjects.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from cmi_model.data import SequenceData
from cmi_model.errors import InputError

Fold = tuple[np.ndarray, np.ndarray]  # (training sequence indices, validation sequence indices)


@dataclass(frozen=True)
class SubjectSplit:
    search: tuple[str, ...]  # the search pool: every search fold trains and validates here
    holdout: tuple[str, ...]  # validation subjects of the confirmation only (empty: no hold-out)


def _labeled(data: SequenceData) -> None:
    if (data.gesture < 0).any():
        raise InputError(f"{data.meta.get('source')}: folds need labeled (train) data")


def _indices_of(data: SequenceData, subjects) -> np.ndarray:
    return np.flatnonzero(np.isin(data.subject, list(subjects)))


def _grouped_splits(data: SequenceData, idx: np.ndarray, n_splits: int, seed: int):
    """StratifiedGroupKFold over idx by subject, stratified by gesture. On small data scikit-learn
    warns that a gesture has fewer sequences than folds: the folds are then as balanced as the data
    allows, which is all stratification can promise, so the warning is not passed on."""
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return list(splitter.split(np.zeros(len(idx)), data.gesture[idx], groups=data.subject[idx]))


def _stratified_group_first_fold(data: SequenceData, idx: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """Subjects validated by the first of n_splits stratified subject-grouped folds over idx."""
    _, va = _grouped_splits(data, idx, n_splits, seed)[0]
    return np.unique(data.subject[idx][va])


def split_subjects(data: SequenceData, holdout: float, n_folds: int, seed: int) -> SubjectSplit:
    """About `holdout` of the subjects (stratified by gesture) are held out; 0 holds out none."""
    _labeled(data)
    subjects = np.unique(data.subject)
    if holdout == 0:
        return SubjectSplit(tuple(subjects.tolist()), ())
    n_splits = max(2, round(1 / holdout))
    if len(subjects) < n_splits:
        raise InputError(
            f"holdout: holding out {holdout:g} of {len(subjects)} subjects leaves too few on one side"
        )
    held = _stratified_group_first_fold(data, np.arange(data.n_sequences), n_splits, seed)
    where = f"holdout: {holdout:g} of {len(subjects)} subjects leaves"
    return _split_with_folds(subjects, held, n_folds, where, "--holdout")


def _split_with_folds(subjects, held, n_folds: int, where: str, flag: str) -> SubjectSplit:
    """Held-out subjects and the rest as the search pool, each side with at least n_folds subjects
    (else an InputError: `where` says which split, `flag` what to change)."""
    search = np.setdiff1d(subjects, held)
    for side, members in (("held-out", held), ("search", search)):
        if len(members) < n_folds:
            raise InputError(
                f"{where} {len(members)} {side} subject(s), fewer than the {n_folds} folds: change {flag} "
                "or --folds, or use more subjects"
            )
    return SubjectSplit(tuple(search.tolist()), tuple(held.tolist()))


def outer_split(data: SequenceData, n_outer: int, k: int, n_folds: int, seed: int) -> SubjectSplit:
    """Outer fold k (1-based) of n_outer stratified subject-grouped outer folds (one draw per
    seed, shared by every k): its subjects are held out, the others form the search pool."""
    _labeled(data)
    subjects = np.unique(data.subject)
    if not 1 <= k <= n_outer:
        raise InputError(f"--outer-fold {k}: the study has {n_outer} outer folds (1..{n_outer})")
    if len(subjects) < n_outer:
        raise InputError(
            f"outer folds: {n_outer} outer folds need at least {n_outer} subjects, the data has {len(subjects)}"
        )
    _, va = _grouped_splits(data, np.arange(data.n_sequences), n_outer, seed)[k - 1]
    held = np.unique(data.subject[va])
    return _split_with_folds(
        subjects, held, n_folds, f"outer folds: outer fold {k} of {n_outer} has", "--outer-folds"
    )


def subject_folds(data: SequenceData, n_folds: int, seed: int, subjects=None) -> list[Fold]:
    """Stratified subject-grouped folds over `subjects` (default: all), deterministic for a seed."""
    _labeled(data)
    idx = np.arange(data.n_sequences) if subjects is None else _indices_of(data, subjects)
    n_subjects = len(np.unique(data.subject[idx]))
    if n_folds < 2:
        raise InputError(f"folds: need at least 2 folds, got {n_folds}")
    if n_subjects < n_folds:
        raise InputError(
            f"folds: {n_folds} folds need at least {n_folds} subjects, the data has {n_subjects}"
        )
    return [(idx[tr], idx[va]) for tr, va in _grouped_splits(data, idx, n_folds, seed)]


def holdout_folds(data: SequenceData, split: SubjectSplit, n_folds: int, seed: int) -> list[Fold]:
    """Confirmation folds: every validation fold is held-out subjects only (a seeded shuffle of
    them cut into n_folds slices); without held-out subjects, plain folds over everyone."""
    if not split.holdout:
        return subject_folds(data, n_folds, seed)
    if len(split.holdout) < n_folds:
        raise InputError(
            f"folds: {n_folds} folds need at least {n_folds} held-out subjects, have {len(split.holdout)}"
        )
    held = np.random.default_rng(seed).permutation(np.asarray(split.holdout))
    folds = []
    for part in np.array_split(held, n_folds):
        va = _indices_of(data, part)
        folds.append((np.setdiff1d(np.arange(data.n_sequences), va), va))
    return folds


def inner_split(data: SequenceData, train_idx: np.ndarray, fraction: float, seed: int) -> Fold:
    """(fit indices, stop indices): about `fraction` of the training subjects, stratified by
    gesture, set aside to choose the epoch."""
    n_subjects = len(np.unique(data.subject[train_idx]))
    n_splits = max(2, round(1 / fraction))
    if n_subjects < n_splits:
        raise InputError(
            f"early stopping: {n_subjects} training subjects are too few to set {fraction:g} aside"
        )
    stop = _stratified_group_first_fold(data, train_idx, n_splits, seed)
    in_stop = np.isin(data.subject[train_idx], stop)
    return train_idx[~in_stop], train_idx[in_stop]


def subjects_of(data: SequenceData, idx: np.ndarray) -> list[str]:
    """The subject ids of these sequences, sorted."""
    return sorted(np.unique(data.subject[idx]).tolist())
