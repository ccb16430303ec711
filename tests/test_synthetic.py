"""The embedded synthetic data set: the real files' schema, formats and behaviour."""

import csv
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmi_model import synthetic
from cmi_model.features import gravity_in_device
from cmi_model.labels import GESTURES, TARGET_GESTURES, is_target
from cmi_model.schema import (
    BEHAVIORS,
    DEMOGRAPHICS_COLUMNS,
    ORIENTATIONS,
    SENSOR_COLUMNS,
    TEST_COLUMNS,
    THM_COLUMNS,
    TOF_COLUMNS,
    TRAIN_COLUMNS,
)
from cmi_model.synthetic import PAIRS, generate
from cmi_model.synthetic import plan as synthetic_plan

N_SUBJECTS = 4  # >= 4 guarantees a left-handed (mirrored) subject


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = generate(out, n_subjects=N_SUBJECTS, seed=0)
    train = pd.read_csv(out / "train.csv")
    test = pd.read_csv(out / "test.csv")
    train_demo = pd.read_csv(out / "train_demographics.csv")
    test_demo = pd.read_csv(out / "test_demographics.csv")
    return {
        "dir": out,
        "summary": summary,
        "train": train,
        "test": test,
        "train_demo": train_demo,
        "test_demo": test_demo,
    }


def _header(path: Path) -> str:
    with open(path) as f:
        return f.readline().rstrip("\n")


def test_column_constants():
    assert len(SENSOR_COLUMNS) == 332 and len(set(SENSOR_COLUMNS)) == 332
    assert SENSOR_COLUMNS[:12] == [
        "acc_x", "acc_y", "acc_z", "rot_w", "rot_x", "rot_y", "rot_z",
        "thm_1", "thm_2", "thm_3", "thm_4", "thm_5",
    ]  # fmt: skip
    assert SENSOR_COLUMNS[12:14] == ["tof_1_v0", "tof_1_v1"] and SENSOR_COLUMNS[-1] == "tof_5_v63"
    assert SENSOR_COLUMNS.index("tof_2_v0") == 12 + 64
    assert len(TRAIN_COLUMNS) == 341
    assert TRAIN_COLUMNS[:9] == [
        "row_id", "sequence_type", "sequence_id", "sequence_counter", "subject",
        "orientation", "behavior", "phase", "gesture",
    ]  # fmt: skip
    assert TRAIN_COLUMNS[9:] == SENSOR_COLUMNS
    expected_test = ["row_id", "sequence_id", "sequence_counter", "subject", *SENSOR_COLUMNS]
    assert expected_test == TEST_COLUMNS


def test_package_exports_what_scripts_import():
    for name in synthetic.__all__:
        assert hasattr(synthetic, name), name
    assert synthetic.gravity_in_device is gravity_in_device and synthetic.TRAIN_COLUMNS is TRAIN_COLUMNS


def test_files_have_exact_headers_unquoted(data):
    d = data["dir"]
    assert _header(d / "train.csv") == ",".join(TRAIN_COLUMNS)
    assert _header(d / "test.csv") == ",".join(TEST_COLUMNS)
    assert _header(d / "train_demographics.csv") == ",".join(DEMOGRAPHICS_COLUMNS)
    assert _header(d / "test_demographics.csv") == ",".join(DEMOGRAPHICS_COLUMNS)
    assert list(data["train"].columns) == TRAIN_COLUMNS
    assert list(data["test"].columns) == TEST_COLUMNS


def test_summary_matches_files(data):
    s = data["summary"]
    for name in ("train", "test"):
        df = data[name]
        assert Path(s[name]["path"]).name == f"{name}.csv"
        assert Path(s[name]["demographics_path"]).name == f"{name}_demographics.csv"
        assert s[name]["n_rows"] == len(df)
        assert s[name]["n_sequences"] == df.sequence_id.nunique()
        assert s[name]["n_subjects"] == df.subject.nunique()
    assert s["train"]["n_subjects"] == N_SUBJECTS
    assert s["test"]["n_subjects"] == synthetic.n_test_subjects(N_SUBJECTS) >= 2


def test_id_formats_and_counters(data):
    for name in ("train", "test"):
        df = data[name]
        assert df.sequence_id.str.fullmatch(r"SEQ_\d{6}").all()
        assert df.subject.str.fullmatch(r"SUBJ_\d{6}").all()
        expected = df.sequence_id + "_" + df.sequence_counter.map("{:06d}".format)
        assert (df.row_id == expected).all()
        assert df.row_id.is_unique
        # each sequence is one contiguous block, in id order, counting 0..n-1
        starts = df.sequence_id.ne(df.sequence_id.shift())
        assert starts.sum() == df.sequence_id.nunique()
        assert df.sequence_id[starts].is_monotonic_increasing
        counter_expected = df.groupby("sequence_id").cumcount()
        assert (df.sequence_counter == counter_expected).all()
        assert (df.groupby("sequence_id").subject.nunique() == 1).all()
    train, test = data["train"], data["test"]
    assert not set(train.sequence_id) & set(test.sequence_id)
    assert not set(train.subject) & set(test.subject)


def test_labels_consistent_within_sequences(data):
    train = data["train"]
    per_seq = train.groupby("sequence_id")
    assert (per_seq[["gesture", "orientation", "sequence_type"]].nunique() == 1).all().all()
    first = per_seq[["gesture", "sequence_type", "orientation"]].first()
    assert set(first.gesture) <= set(GESTURES)
    assert (
        first.sequence_type == first.gesture.map(lambda g: "Target" if is_target(g) else "Non-Target")
    ).all()
    assert set(first.orientation) <= set(ORIENTATIONS)
    assert set(first.sequence_type) == {"Target", "Non-Target"}


def test_behaviours_in_order_and_phase_follows_them(data):
    train = data["train"]
    assert set(train.behavior) == set(BEHAVIORS)
    assert (train.phase == np.where(train.behavior == "Performs gesture", "Gesture", "Transition")).all()
    stage = train.behavior.map({BEHAVIORS[0]: 0, BEHAVIORS[1]: 0, BEHAVIORS[2]: 1, BEHAVIORS[3]: 2})
    grouped = stage.groupby(train.sequence_id)
    assert (grouped.diff().fillna(0) >= 0).all(), "stages must run initial -> hand at target -> gesture"
    assert (grouped.nunique() == 3).all(), "every sequence has all three stages"
    assert (grouped.first() == 0).all()
    initial = train[stage == 0].groupby("sequence_id").behavior
    assert (initial.nunique() == 1).all()
    share_relax = (initial.first() == BEHAVIORS[0]).mean()
    assert 0.35 < share_relax < 0.65


def test_only_the_51_pairs_each_about_twice_per_subject(data):
    assert len(PAIRS) == len(set(PAIRS)) == 51
    assert {o for o, _ in PAIRS} == set(ORIENTATIONS) and {g for _, g in PAIRS} == set(GESTURES)
    first = data["train"].groupby("sequence_id")[["subject", "orientation", "gesture"]].first()
    pairs = set(zip(first.orientation, first.gesture, strict=True))
    assert pairs == set(PAIRS)
    counts = first.groupby(["subject", "orientation", "gesture"]).size()
    assert counts.max() <= 2 and counts.mean() > 1.9
    assert len(counts) > 0.97 * 51 * N_SUBJECTS


def test_sequence_lengths(data):
    lengths = data["train"].groupby("sequence_id").size()
    assert lengths.min() >= 29 and lengths.max() <= 700
    assert 50 <= lengths.median() <= 68
    assert lengths.mean() > lengths.median()  # long right tail


def test_full_size_plan_matches_real_sizes():
    (subjects, plan), _ = synthetic.build_plans(synthetic.FULL_SIZE_SUBJECTS, seed=0)
    assert len(subjects.ids) == 81
    assert 8000 <= len(plan) <= 8262
    assert 540_000 <= plan.length.sum() <= 610_000
    assert plan.length.min() >= 29 and plan.length.max() <= 700
    assert 20 <= plan.rot_nan.sum() <= 100  # real: about 50 sequences with NaN rotation
    assert 100 <= (plan.thm_drop[:, 0] >= 0).sum() <= 400
    assert 100 <= (plan.tof_drop[:, 0] >= 0).sum() <= 400
    assert not plan.imu_only.any()


def test_tof_values_are_integers_or_no_response(data):
    for name in ("train", "test"):
        tof = data[name][TOF_COLUMNS].to_numpy(float)
        present = tof[~np.isnan(tof)]
        assert ((present == -1) | ((present >= 0) & (present <= 254))).all()
        assert (present == np.round(present)).all()
        assert (present == -1).any() and (present >= 0).any()


def test_raw_fields_empty_for_missing_and_integer_tof(data):
    with open(data["dir"] / "test.csv", newline="") as f:
        rows = list(csv.reader(f))
    first_tof = TEST_COLUMNS.index("tof_1_v0")
    fields = {v for row in rows[1:] for v in row[first_tof:]}
    assert all(re.fullmatch(r"-1|\d{1,3}|", v) for v in fields), "ToF must be written as integers or empty"
    assert "" in fields
    text = (data["dir"] / "train.csv").read_text()
    assert ",," in text  # dropped sensors are empty fields ...
    assert not re.search(r"(^|,)(nan|NaN|NA|null|None)(,|$)", text, flags=re.MULTILINE)  # ... not spelled out


def test_quaternions_unit_norm_and_agree_with_gravity(data):
    train = data["train"]
    q = train[["rot_w", "rot_x", "rot_y", "rot_z"]].to_numpy()
    ok = ~np.isnan(q).any(axis=1)
    assert ok.mean() > 0.95
    assert np.allclose(np.linalg.norm(q[ok], axis=1), 1.0, atol=1e-4)
    # While the hand is held still, acc is gravity seen from the device: R^T [0, 0, 9.81].
    hold = ok & (train.behavior == "Hand at target location").to_numpy()
    acc = train[["acc_x", "acc_y", "acc_z"]].to_numpy()[hold]
    residual = np.linalg.norm(acc - gravity_in_device(q[hold]), axis=1)
    assert np.median(residual) < 0.8
    # ... and the test can tell: the transposed rotation (conjugate quaternion) does not fit.
    conj = q[hold] * np.array([1, -1, -1, -1])
    assert np.median(np.linalg.norm(acc - gravity_in_device(conj), axis=1)) > 3 * np.median(residual)
    # left-handed subjects are mirrored but stay consistent
    left = set(data["train_demo"].subject[data["train_demo"].handedness == 0])
    assert left, "the fixture must contain a left-handed subject"
    is_left = train.subject.isin(left).to_numpy()[hold]
    assert np.median(residual[is_left]) < 0.8


def test_acc_includes_gravity_and_orientation_moves_it(data):
    train = data["train"]
    acc = train[["acc_x", "acc_y", "acc_z"]].to_numpy()
    magnitude = np.linalg.norm(acc, axis=1)
    assert abs(magnitude[(train.phase == "Transition").to_numpy()].mean() - 9.81) < 0.3
    hold = train[(train.behavior == "Hand at target location") & train.gesture.isin(TARGET_GESTURES)]
    by_orientation = hold.groupby("orientation")[["acc_x", "acc_y", "acc_z"]].mean().to_numpy()
    assert len(by_orientation) == 4
    gaps = np.linalg.norm(by_orientation[:, None] - by_orientation[None], axis=2)
    assert gaps[np.triu_indices(4, 1)].min() > 1.5, "each orientation puts gravity elsewhere"


def test_gestures_have_distinct_motion(data):
    train = data["train"]
    g = train[train.phase == "Gesture"]
    acc_std = g.groupby("sequence_id")[["acc_x", "acc_y", "acc_z"]].std().sum(axis=1)
    gesture = g.groupby("sequence_id").gesture.first()
    by_gesture = acc_std.groupby(gesture).median()
    assert by_gesture["Wave hello"] > 2 * by_gesture["Text on phone"]


def test_targets_warmer_and_closer_than_non_targets(data):
    train = data["train"]
    g = train[train.phase == "Gesture"]
    target = (g.sequence_type == "Target").to_numpy()
    thm = np.nanmean(g[THM_COLUMNS].to_numpy(), axis=1)
    assert np.nanmean(thm[target]) > np.nanmean(thm[~target]) + 1.5
    assert 27 < np.nanmean(thm[target]) < 34 and 21 < np.nanmean(thm[~target]) < 27
    tof = g[TOF_COLUMNS].to_numpy(float)
    responding = np.nanmean(tof >= 0, axis=1)
    assert responding[target].mean() > 2 * responding[~target].mean()
    close = np.where(tof >= 0, tof, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows with no response at all
        dist = np.nanmean(close, axis=1)
    assert np.nanmean(dist[target]) < np.nanmean(dist[~target]) - 30


def test_half_of_test_sequences_are_imu_only(data):
    test = data["test"]
    per_seq = test.groupby("sequence_id")
    empty = per_seq[THM_COLUMNS + TOF_COLUMNS].apply(lambda x: x.isna().all().all())
    assert 0.3 < empty.mean() < 0.7
    assert test[["acc_x", "acc_y", "acc_z"]].notna().all().all()
    # in train, only single sensors drop out: never all thermopiles and ToF of a sequence
    train = data["train"]
    train_empty = train.groupby("sequence_id")[THM_COLUMNS + TOF_COLUMNS].apply(
        lambda x: x.isna().all().all()
    )
    assert not train_empty.any()


def test_sensor_dropouts_take_whole_sensors(data):
    train = data["train"]
    thm_nan = train[THM_COLUMNS].isna()
    assert thm_nan.any(axis=1).any(), "some thermopile dropouts expected"
    assert not thm_nan.all(axis=1).any()
    tof_nan = train[TOF_COLUMNS].isna().to_numpy().reshape(len(train), 5, 64)
    assert tof_nan.any()
    per_sensor = tof_nan.any(axis=2)
    assert (tof_nan.all(axis=2) == per_sensor).all(), "a ToF dropout blanks all 64 pixels of a sensor"
    assert train[["acc_x", "acc_y", "acc_z"]].notna().all().all()


def test_rotation_dropout_blanks_whole_sequences(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic_plan, "ROT_NAN_RATE", 0.5)
    generate(tmp_path, n_subjects=1, seed=3)
    train = pd.read_csv(tmp_path / "train.csv")
    rot = train[["rot_w", "rot_x", "rot_y", "rot_z"]].isna()
    assert (rot.all(axis=1) == rot.any(axis=1)).all()
    per_seq = rot.rot_w.groupby(train.sequence_id)
    missing = per_seq.mean()
    assert set(missing.unique()) == {0.0, 1.0}
    assert 0.3 < missing.mean() < 0.7


def test_demographics(data):
    for split in ("train", "test"):
        demo, df = data[f"{split}_demo"], data[split]
        assert list(demo.columns) == DEMOGRAPHICS_COLUMNS
        assert set(df.subject) == set(demo.subject) and demo.subject.is_unique
        for col in ("adult_child", "sex", "handedness"):
            assert set(demo[col]) <= {0, 1}
        assert ((demo.age >= 18) == (demo.adult_child == 1)).all()
        assert demo.age.between(5, 90).all()
        assert demo.height_cm.between(110, 210).all()
        assert (demo.shoulder_to_wrist_cm > demo.elbow_to_wrist_cm).all()


def test_demographics_children_smaller_and_mostly_right_handed():
    (subjects, _), _ = synthetic.build_plans(synthetic.FULL_SIZE_SUBJECTS, seed=1)
    d = subjects.demo
    child = d["adult_child"] == 0
    assert 0 < child.sum() < len(child)
    assert d["height_cm"][child].mean() < d["height_cm"][~child].mean() - 10
    assert 0.75 < d["handedness"].mean() < 0.97


def test_deterministic_for_a_seed(tmp_path):
    a = generate(tmp_path / "a", n_subjects=1, seed=7)
    b = generate(tmp_path / "b", n_subjects=1, seed=7)
    c = generate(tmp_path / "c", n_subjects=1, seed=8)
    for name in ("train.csv", "train_demographics.csv", "test.csv", "test_demographics.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes(), name
    assert a["train"]["n_rows"] == b["train"]["n_rows"] and a != c


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_subjects"):
        generate("unused", n_subjects=0)
    with pytest.raises(ValueError, match="seed"):
        generate("unused", seed=-1)
