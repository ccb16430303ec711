"""Nested evaluation's promise, checked on the stored records alone: no information crosses
outer folds. For outer fold k with held-out subjects H_k (its confirmation's record):

- every arm study of outer fold k records H_k as held out and a search pool disjoint from it;
- no search trial of outer fold k trained, chose an epoch or validated on a subject of H_k;
- every confirmation fold of outer fold k validated on subjects of H_k only, with a model
  whose training (and epoch-choosing) subjects exclude the subjects it scored;
- the H_k are disjoint, and with every outer fold run their union is every subject of the data.

`cmi-study report` states the outcome in its reproducibility section; the tests call it on the
storage a nested run wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna

from study import records


@dataclass(frozen=True)
class Crossing:
    """What the check read and what it found (problems: one line each; none: nothing crossed)."""

    outer_folds: tuple[int, ...]  # the outer folds found in the storage
    trials: int  # search and confirmation trials whose folds were read
    folds: int  # their recorded folds
    unrecorded: int  # folds without recorded training subjects (runs of older versions)
    held_out: dict[int, tuple[str, ...]] = field(default_factory=dict)  # k → its held-out subjects
    problems: tuple[str, ...] = ()


def _folds(study: optuna.Study) -> list[tuple[int, records.FoldRecord]]:
    out = []
    for t in study.get_trials(deepcopy=False):
        try:
            rec = records.read_trial(t)
        except records.RecordError:
            continue  # a malformed trial is the report's warning, not a crossing
        out += [(t.number, f) for f in rec.folds]
    return out


def check(storage, name: str) -> Crossing:
    """Check every outer fold of `name` (studies NAME-outerK-…) in `storage`."""
    existing = set(optuna.get_all_study_names(storage))
    ks = tuple(records.outer_folds_in(name, existing))
    problems: list[str] = []
    held: dict[int, tuple[str, ...]] = {}
    n_trials = n_folds = unrecorded = 0
    n_subjects, n_outer = None, None
    for k in ks:
        part = records.outer_name(name, k)
        confirm_name = records.study_name(part, records.CONFIRM)
        arm_studies = {
            arm: optuna.load_study(study_name=records.study_name(part, arm), storage=storage)
            for arm in records.ARMS
            if records.study_name(part, arm) in existing
        }
        arm_records = {}
        for arm, study in arm_studies.items():
            try:
                arm_records[arm] = records.read_arm_study(study)
            except records.RecordError:  # no or a broken record (a creator that died): the report warns
                continue
        arm_studies = {arm: s for arm, s in arm_studies.items() if arm in arm_records}
        confirm = (
            optuna.load_study(study_name=confirm_name, storage=storage) if confirm_name in existing else None
        )
        try:
            confirmed = records.read_confirm_study(confirm) if confirm is not None else None
        except records.RecordError:
            confirmed = None
        if confirmed is not None:
            h = set(confirmed.holdout_subjects)
        else:
            h = set(next(iter(arm_records.values())).holdout_subjects) if arm_records else set()
        held[k] = tuple(sorted(h))
        for arm, rec in arm_records.items():
            n_subjects = n_subjects or rec.data.n_subjects
            n_outer = n_outer or (rec.settings.get("study") or {}).get("outer_folds")
            if set(rec.holdout_subjects) != h:
                problems.append(
                    f"outer fold {k}: {arm}'s search records another held-out set than its confirmation"
                )
            if seen := h & set(rec.search_subjects):
                problems.append(
                    f"outer fold {k}: {arm}'s search pool holds held-out subject(s) {sorted(seen)}"
                )
            for number, f in _folds(arm_studies[arm]):
                n_folds += 1
                unrecorded += not f.train_subjects
                if seen := h & {*f.train_subjects, *f.stop_subjects, *f.val_subjects}:
                    problems.append(
                        f"outer fold {k}: {arm} search trial #{number} used held-out subject(s) {sorted(seen)}"
                    )
            n_trials += len(arm_studies[arm].get_trials(deepcopy=False))
        if confirm is None:
            continue
        n_trials += len(confirm.get_trials(deepcopy=False))
        for number, f in _folds(confirm):
            n_folds += 1
            unrecorded += not f.train_subjects
            if outside := set(f.val_subjects) - h:
                problems.append(
                    f"outer fold {k}: confirmation trial #{number} scored subject(s) {sorted(outside)} "
                    "outside its held-out set"
                )
            if seen := set(f.val_subjects) & {*f.train_subjects, *f.stop_subjects}:
                problems.append(
                    f"outer fold {k}: confirmation trial #{number} trained on the subject(s) it scored {sorted(seen)}"
                )
    for i, k in enumerate(ks):
        for j in ks[i + 1 :]:
            if both := set(held[k]) & set(held[j]):
                problems.append(f"outer folds {k} and {j} both hold out {sorted(both)}")
    every = set().union(*map(set, held.values())) if held else set()
    if n_outer is not None and ks == tuple(range(1, n_outer + 1)) and n_subjects and len(every) != n_subjects:
        problems.append(
            f"the {n_outer} outer folds hold out {len(every)} subjects, the data has {n_subjects}"
        )
    return Crossing(ks, n_trials, n_folds, unrecorded, held, tuple(problems))
