"""The competition score: (binary F1 + 9-class macro F1) / 2, on gesture strings."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import f1_score

from cmi_model.labels import GESTURES, check_gesture, is_target, nine_class_of


@dataclass(frozen=True)
class Score:
    score: float
    binary_f1: float
    macro_f1: float


def cmi_score_parts(y_true: Sequence[str], y_pred: Sequence[str]) -> Score:
    """Score with its two halves. Unknown gesture strings raise ValueError naming them."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("cannot score an empty set of predictions")
    for g in set(y_true) | set(y_pred):
        check_gesture(g)
    bin_true = [is_target(g) for g in y_true]
    bin_pred = [is_target(g) for g in y_pred]
    binary = f1_score(bin_true, bin_pred, pos_label=True, zero_division=0)
    # Macro over the classes present in either list, as sklearn's default (and the
    # competition's scoring code) does.
    macro = f1_score(
        [nine_class_of(g) for g in y_true],
        [nine_class_of(g) for g in y_pred],
        average="macro",
        zero_division=0,
    )
    return Score(score=0.5 * binary + 0.5 * macro, binary_f1=float(binary), macro_f1=float(macro))


def cmi_score(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Competition score on gesture strings."""
    return cmi_score_parts(y_true, y_pred).score


def score_indices(y_true: np.ndarray, y_pred: np.ndarray) -> Score:
    """Score on 18-class indices (as the model outputs them)."""
    names = np.array(GESTURES, dtype=object)
    return cmi_score_parts(list(names[np.asarray(y_true)]), list(names[np.asarray(y_pred)]))


def subject_scores(y_true: np.ndarray, y_pred: np.ndarray, subjects: np.ndarray) -> dict[str, dict]:
    """`score_indices` on each subject's sequences alone: subject → {"score", "binary_f1",
    "macro_f1", "n"} (n: the subject's sequences), subjects in sorted order."""
    y_true, y_pred, subjects = np.asarray(y_true), np.asarray(y_pred), np.asarray(subjects)
    out = {}
    for subject in sorted(np.unique(subjects).tolist()):
        mine = subjects == subject
        s = score_indices(y_true[mine], y_pred[mine])
        out[str(subject)] = {
            "score": s.score,
            "binary_f1": s.binary_f1,
            "macro_f1": s.macro_f1,
            "n": int(mine.sum()),
        }
    return out
