"""Subject-grouped, gesture-stratified folds: the same split for every arm and trial of a seed."""

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from cmi_model.data import SequenceData
from cmi_model.errors import InputError


def subject_folds(data: SequenceData, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(train sequence indices, validation sequence indices)] per fold, deterministic for a seed."""
    n_subjects = len(np.unique(data.subject))
    if n_folds < 2:
        raise InputError(f"folds: need at least 2 folds, got {n_folds}")
    if n_subjects < n_folds:
        raise InputError(
            f"folds: {n_folds} folds need at least {n_folds} subjects, the data has {n_subjects}"
        )
    if (data.gesture < 0).any():
        raise InputError(f"{data.meta.get('source')}: folds need labeled (train) data")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    x = np.zeros(data.n_sequences)
    return [(tr, va) for tr, va in splitter.split(x, data.gesture, groups=data.subject)]
