"""Warnings about the studies as a whole: what is missing, what differs between them, and
whether the verdict's subjects were kept apart from the selection that they judge.

Each check appends sentences to ``ReportData.warnings``; none raises.
"""

from __future__ import annotations

from study import records
from study.records import ARMS, CONFIRM
from study.report.data import ArmData, FoldFacts, ReportData, arm_order


def check_consistency(data: ReportData) -> None:
    for key in ("n_folds", "seed", "epochs", "preset", "n_trials"):
        values = {a: getattr(d.record, key) for a, d in data.arms.items()}
        values = {a: v for a, v in values.items() if v is not None}
        if len({repr(v) for v in values.values()}) > 1:
            listed = ", ".join(f"{a}: {v}" for a, v in values.items())
            data.warnings.append(f"Arms differ in {key} ({listed}): the comparison may not be like for like.")
    prints = {a: d.record.data.fingerprint for a, d in data.arms.items()}
    if data.confirm is not None:
        prints[CONFIRM] = data.confirm.record.data.fingerprint
    known = {k: v for k, v in prints.items() if v}
    if len(set(known.values())) > 1:
        listed = ", ".join(f"{a}: {v}" for a, v in known.items())
        data.warnings.append(f"Studies were run on different data (fingerprints {listed}).")


def data_info(data: ReportData) -> records.DataInfo | None:
    """The first study's description of its data (arms first, then the confirmation)."""
    return next((r.data for r in data.studies().values() if r.data != records.DataInfo()), None)


def add_warnings(data: ReportData) -> None:
    name, confirm = data.name, data.confirm
    if not data.arms:
        data.warnings.append(
            f"No arm study ({', '.join(records.study_name(name, a) for a in ARMS)}) in this storage."
        )
    if confirm is None:
        data.warnings.append(
            f"No confirmation study {records.study_name(name, CONFIRM)} yet: any verdict below rests on the "
            f"best search trials, which are selection-biased. Run `cmi-study confirm` for an honest comparison."
        )
    elif not len(confirm.scores):
        data.warnings.append(
            f"The confirmation study {records.study_name(name, CONFIRM)} has no finished trial yet."
        )
    for arm, d in data.arms.items():
        running = d.state_counts.get("RUNNING", 0)
        if running:
            data.warnings.append(f"{arm}: {running} trial(s) still running; numbers may change.")
        if d.best is None and len(d.trials):
            data.warnings.append(f"{arm}: no complete trial yet ({d.state_summary()}).")


def tuned_dimensions(d: ArmData) -> int:
    """How many parameters the arm's search tuned (its recorded space, else its best trial's)."""
    if d.record.search_space:
        return len(d.record.search_space)
    return len(d.best.params) if d.best is not None else 0


def _listed(subjects: set[str], limit: int = 8) -> str:
    shown = sorted(subjects)
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def _search_folds(data: ReportData) -> list[tuple[str, FoldFacts]]:
    return [(arm, f) for arm, d in data.arms.items() if d.best is not None for f in d.best.folds]


def subject_warnings(data: ReportData) -> None:
    """The confirmation's subjects against the search's, and every recorded fold's stop subjects."""
    confirm = data.confirm
    confirm_folds = [(a, f) for a, fs in (confirm.fold_facts if confirm else {}).items() for f in fs]
    if confirm is not None and len(confirm.scores):
        held = set(confirm.record.holdout_subjects)
        if not held:
            tuned = ", ".join(
                f"{a}: {tuned_dimensions(d)}"
                for a, d in sorted(data.arms.items(), key=lambda kv: arm_order(kv[0]))
            )
            data.warnings.append(
                "No held-out subjects (--holdout 0): selection and confirmation share subjects. Each arm's "
                "configuration was picked on the subjects that now score it, so the verdict is optimistic for "
                f"the arm with more tuned dimensions ({tuned or 'unknown'} tuned parameters)."
            )
        else:
            for arm, d in data.arms.items():
                seen = held & set(d.record.search_subjects)
                seen |= {
                    s for f in (d.best.folds if d.best else []) for s in (*f.val_subjects, *f.stop_subjects)
                } & held
                if seen:
                    data.warnings.append(
                        f"{arm}: the search used held-out subjects ({_listed(seen)}): the confirmation is not "
                        f"independent of the selection."
                    )
            outside = {s for _, f in confirm_folds for s in f.val_subjects} - held
            if outside:
                data.warnings.append(
                    f"Confirmation folds validated on subjects outside the hold-out ({_listed(outside)})."
                )
    leaky = [arm for arm, f in [*_search_folds(data), *confirm_folds] if f.leaks]
    if leaky:
        data.warnings.append(
            f"{len(leaky)} fold(s) ({', '.join(sorted(set(leaky), key=arm_order))}) chose their epoch on stop "
            f"subjects that are also their validation subjects: those scores looked at their own validation fold."
        )
