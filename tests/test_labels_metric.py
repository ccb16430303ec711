import numpy as np
import pytest
from sklearn.metrics import f1_score

from cmi_model import labels
from cmi_model.metric import cmi_score, cmi_score_parts, score_indices


def test_hierarchy_sizes_and_disjointness():
    assert len(labels.GESTURES) == 18 and len(set(labels.GESTURES)) == 18
    assert len(labels.TARGET_GESTURES) == 8 and len(labels.NON_TARGET_GESTURES) == 10
    assert not set(labels.TARGET_GESTURES) & set(labels.NON_TARGET_GESTURES)
    assert labels.NINE_CLASSES[-1] == labels.NON_TARGET and len(labels.NINE_CLASSES) == 9


@pytest.mark.parametrize("i,gesture", list(enumerate(labels.GESTURES)))
def test_every_index_maps_to_what_its_string_implies(i, gesture):
    target = gesture in labels.TARGET_GESTURES
    assert labels.EIGHTEEN_TO_BINARY[i] == int(target)
    nine = labels.NINE_CLASSES[labels.EIGHTEEN_TO_NINE[i]]
    assert nine == (gesture if target else labels.NON_TARGET)
    m = labels.aggregation_matrix()
    assert m[i].sum() == 1 and labels.NINE_CLASSES[int(m[i].argmax())] == nine


def test_unknown_gesture_rejected():
    with pytest.raises(ValueError, match="Wave goodbye"):
        labels.is_target("Wave goodbye")


def test_perfect_and_known_scores():
    y = list(labels.GESTURES)
    assert cmi_score(y, y) == 1.0
    # All non-targets confused with each other still score 1: they collapse to non_target.
    swapped = list(labels.TARGET_GESTURES) + list(reversed(labels.NON_TARGET_GESTURES))
    assert cmi_score(y, swapped) == 1.0


def test_score_matches_competition_definition_by_hand():
    rng = np.random.default_rng(0)
    y_true = list(rng.choice(labels.GESTURES, 300))
    y_pred = [g if rng.random() < 0.6 else rng.choice(labels.GESTURES) for g in y_true]
    parts = cmi_score_parts(y_true, y_pred)
    bt = [g in labels.TARGET_GESTURES for g in y_true]
    bp = [g in labels.TARGET_GESTURES for g in y_pred]
    binary = f1_score(bt, bp, zero_division=0)

    def collapse(g):
        return g if g in labels.TARGET_GESTURES else "non_target"

    macro = f1_score(
        [collapse(g) for g in y_true], [collapse(g) for g in y_pred], average="macro", zero_division=0
    )
    assert parts.binary_f1 == pytest.approx(binary)
    assert parts.macro_f1 == pytest.approx(macro)
    assert parts.score == pytest.approx((binary + macro) / 2)
    idx = {g: i for i, g in enumerate(labels.GESTURES)}
    assert score_indices(np.array([idx[g] for g in y_true]), np.array([idx[g] for g in y_pred])) == parts


def test_binary_zero_division_is_zero():
    # No target predicted or present: binary F1 is 0 by the zero_division rule, not an error.
    y = ["Wave hello", "Text on phone"]
    assert cmi_score_parts(y, y).binary_f1 == 0.0


def test_metric_rejects_unknown_prediction_and_length_mismatch():
    with pytest.raises(ValueError, match="not a gesture"):
        cmi_score(["Wave hello"], ["not a gesture"])
    with pytest.raises(ValueError, match="2 labels"):
        cmi_score(["Wave hello", "Wave hello"], ["Wave hello"])
