import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cmi_model import data as D
from cmi_model import dataset as DS
from cmi_model import features as F
from cmi_model import reading as R
from cmi_model import validation as V
from cmi_model.config import DataConfig
from cmi_model.errors import InputError
from cmi_model.folds import subject_folds
from cmi_model.labels import GESTURES
from cmi_model.schema import TEST_COLUMNS, TRAIN_COLUMNS
from cmi_model.synthetic import generate
from study.cli import main


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate(out, n_subjects=4, seed=3)
    return out


@pytest.fixture(scope="session")
def small_frames(synth):
    """The first few sequences of the synthetic files: quick to mutate and rewrite."""
    train = pd.read_csv(synth / "train.csv", nrows=600)
    keep = train["sequence_id"].unique()[:5]
    train = train[train["sequence_id"].isin(keep)]
    demo = pd.read_csv(synth / "train_demographics.csv")
    return train, demo


def write(folder, train, demo):
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    demo.to_csv(folder / "train_demographics.csv", index=False)
    return folder


def run_inspect(folder, capsys):
    code = main(["inspect", "--data", str(folder)])
    err = capsys.readouterr().err.strip()
    return code, err


# ------------------------------------------------------------------ bad input: one line, exit 2


def _drop_column(t):
    return t.drop(columns=["acc_y"])


def _misspell(t):
    return t.rename(columns={"thm_3": "thm3"})


def _bad_gesture(t):
    t = t.copy()
    first = t["sequence_id"] == t["sequence_id"].iloc[0]
    t.loc[first, "gesture"] = "Wave goodbye"
    return t


def _changing(column, value):
    def mutate(t):
        t = t.copy()
        seq = t["sequence_id"].iloc[0]
        rows = t.index[t["sequence_id"] == seq]
        t.loc[rows[3], column] = value(t.loc[rows[3], column])
        return t

    return mutate


def _counter_gap(t):
    t = t.copy()
    rows = t.index[t["sequence_id"] == t["sequence_id"].iloc[0]]
    t.loc[rows[2:], "sequence_counter"] += 1
    return t


def _non_numeric(t):
    t = t.copy().astype({"tof_2_v5": object})
    t.loc[t.index[7], "tof_2_v5"] = "abc"
    return t


def _inf(t):
    t = t.copy()
    t.loc[t.index[9], "thm_4"] = np.inf
    return t


def _bad_type(t):
    t = t.copy()
    seq = t["sequence_id"] == t["sequence_id"].iloc[0]
    flip = {"Target": "Non-Target", "Non-Target": "Target"}
    t.loc[seq, "sequence_type"] = t.loc[seq, "sequence_type"].map(flip)
    return t


OTHER_GESTURE = {g: GESTURES[(i + 1) % 18] for i, g in enumerate(GESTURES)}

BAD_TRAIN = {
    "missing column": (_drop_column, ["train.csv", "missing column 'acc_y'"]),
    "misspelled column": (_misspell, ["missing column 'thm_3'", "'thm3'", "misspelled"]),
    "unknown gesture": (_bad_gesture, ["column 'gesture'", "'Wave goodbye'", "not one of the 18"]),
    "gesture changes": (
        _changing("gesture", lambda g: OTHER_GESTURE[g]),
        ["column 'gesture'", "changes within"],
    ),
    "subject changes": (
        _changing("subject", lambda s: "SUBJ_000001"),
        ["column 'subject'", "changes within"],
    ),
    "type changes": (
        _changing("sequence_type", lambda s: "Target" if s == "Non-Target" else "Non-Target"),
        ["column 'sequence_type'", "changes within"],
    ),
    "type contradicts gesture": (_bad_type, ["column 'sequence_type'", "but gesture"]),
    "counter gap": (_counter_gap, ["column 'sequence_counter'", "0..n-1"]),
    "non-numeric": (_non_numeric, ["column 'tof_2_v5'", "'abc'", "line 9", "sequence SEQ_"]),
    "inf value": (_inf, ["column 'thm_4'", "infinite"]),
}


@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_bad_train_file_one_line_exit_2(case, small_frames, tmp_path, capsys):
    train, demo = small_frames
    mutate, expected = BAD_TRAIN[case]
    folder = write(tmp_path / "d", mutate(train), demo)
    code, err = run_inspect(folder, capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "train.csv" in err
    for piece in expected:
        assert piece in err, (piece, err)
    if case not in ("missing column", "misspelled column", "non-numeric", "inf value"):
        assert train["sequence_id"].iloc[0] in err  # names the sequence at fault


def test_missing_file_and_folder(small_frames, tmp_path, capsys):
    code, err = run_inspect(tmp_path / "nope", capsys)
    assert code == 2 and "nope" in err and "not found" in err
    train, demo = small_frames
    folder = write(tmp_path / "d", train, demo)
    (folder / "train_demographics.csv").unlink()
    code, err = run_inspect(folder, capsys)
    assert code == 2 and "train_demographics.csv: file not found" in err


def test_empty_files(small_frames, tmp_path, capsys):
    train, demo = small_frames
    folder = write(tmp_path / "d", train, demo)
    (folder / "train.csv").write_text("")
    code, err = run_inspect(folder, capsys)
    assert code == 2 and "train.csv" in err and "empty" in err
    (folder / "train.csv").write_text(",".join(TRAIN_COLUMNS) + "\n")
    code, err = run_inspect(folder, capsys)
    assert code == 2 and "no data rows" in err


def test_subject_without_demographics(small_frames, tmp_path, capsys):
    train, demo = small_frames
    subject = train["subject"].iloc[0]
    folder = write(tmp_path / "d", train, demo[demo["subject"] != subject])
    code, err = run_inspect(folder, capsys)
    assert code == 2 and "train_demographics.csv" in err and subject in err and "no demographics" in err


def test_nan_sensors_are_data_not_errors(small_frames, tmp_path):
    train, demo = small_frames
    t = train.copy()
    first = t["sequence_id"] == t["sequence_id"].iloc[0]
    t.loc[first, [c for c in t.columns if c.startswith(("thm_", "tof_"))]] = np.nan
    t.loc[t.index[first][:4], ["rot_w", "rot_x", "rot_y", "rot_z"]] = np.nan
    folder = write(tmp_path / "d", t, demo)
    d = D.load_dir(folder, cache_dir=None)
    rows = slice(d.offsets[0], d.offsets[1])
    assert not d.present[rows, 1:].any()  # every thermopile and ToF sensor flagged absent
    assert not d.present[rows, 0][:4].any() and d.present[rows, 0][4:].all()
    assert np.isnan(d.thm[rows]).all() and np.isnan(d.tof[rows]).all()
    assert d.present[d.offsets[1] :, 1:].any()  # the other sequences keep their sensors


# ------------------------------------------------------------------ loading and features


def test_load_synthetic_train_and_test(synth):
    d = D.load_dir(synth, cache_dir=None)
    assert d.n_sequences == len(np.unique(d.sequence_id)) and d.offsets[-1] == len(d.imu)
    assert d.imu.shape[1] == len(F.IMU_FEATURES) and d.tof.shape[1] == 320 and d.thm.shape[1] == 5
    assert d.present.shape == (len(d.imu), len(D.PRESENCE)) and d.present.dtype == bool
    assert (d.gesture >= 0).all() and (d.gesture < 18).all()
    # ToF "no response" (-1) is replaced by the far value; nothing negative remains.
    assert np.nanmin(d.tof) >= 0 and (d.tof == V.TOF_FAR).any()
    raw = pd.read_csv(synth / "train.csv", usecols=["sequence_id", "gesture"]).drop_duplicates("sequence_id")
    by_seq = dict(zip(raw["sequence_id"], raw["gesture"], strict=True))
    assert [GESTURES[g] for g in d.gesture] == [by_seq[s] for s in d.sequence_id]

    test = D.load(synth / "test.csv", synth / "test_demographics.csv", cache_dir=None)
    assert (test.gesture == -1).all()
    imu_only = ~test.sequence_presence()[:, 1:].any(axis=1)
    assert 0.3 < imu_only.mean() < 0.7  # about half of the test sequences carry only the IMU
    assert pd.read_csv(synth / "test.csv", nrows=1).columns.tolist() == TEST_COLUMNS


def _quat_from_axis_angle(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


def test_gravity_removed_and_angular_velocity():
    # A device rotated 90° about x at rest: gravity appears on the y axis in the sensor frame.
    q = _quat_from_axis_angle([1, 0, 0], np.pi / 2)
    gravity_sensor = np.array([0.0, F.GRAVITY, 0.0])
    acc = np.tile(gravity_sensor + [0.5, 0, 0], (3, 1))
    rot = np.tile(q, (3, 1))
    f = F.imu_features(acc, rot, np.array([True, False, False]))
    names = F.IMU_FEATURES
    linacc = f[:, [names.index("linacc_x"), names.index("linacc_y"), names.index("linacc_z")]]
    assert np.allclose(linacc, [[0.5, 0, 0]] * 3, atol=1e-4)
    # Rotating 0.1 rad per step about z: angular velocity (0, 0, 0.1), distance 0.1.
    qs = np.array([_quat_from_axis_angle([0, 0, 1], 0.1 * i) for i in range(4)])
    qs[2] *= -1  # the same rotation with the opposite sign must not look like a jump
    f = F.imu_features(np.ones((4, 3)), qs, np.array([True, False, False, False]))
    angvel = f[:, [names.index("angvel_x"), names.index("angvel_y"), names.index("angvel_z")]]
    assert np.allclose(angvel[1:], [[0, 0, 0.1]] * 3, atol=1e-5)
    assert np.allclose(f[1:, names.index("ang_dist")], 0.1, atol=1e-5)
    assert np.all(f[0, names.index("angvel_x") :] == 0)  # first step of a sequence: no difference


def test_cache_reused_and_keyed_by_content(small_frames, tmp_path, monkeypatch):
    train, demo = small_frames
    folder = write(tmp_path / "d", train, demo)
    cache = tmp_path / "cache"
    first = D.load_dir(folder, cache_dir=cache)
    calls = []
    real_build = D.build
    monkeypatch.setattr(D, "build", lambda *a, **k: calls.append(1) or real_build(*a, **k))
    again = D.load_dir(folder, cache_dir=cache)
    assert calls == [] and isinstance(again.tof, np.memmap)
    np.testing.assert_array_equal(first.imu, again.imu)
    np.testing.assert_array_equal(first.sequence_id, again.sequence_id)
    t = train.copy()
    t.loc[t.index[0], "acc_x"] += 1.0  # same size, other content: a new cache entry
    write(folder, t, demo)
    changed = D.load_dir(folder, cache_dir=cache)
    assert calls == [1] and changed.imu[0, 0] != first.imu[0, 0]


def test_normalizer_uses_training_fold_only(synth):
    d = D.load_dir(synth, cache_dir=None)
    train_idx, val_idx = subject_folds(d, 2, seed=0)[0]
    norm = DS.Normalizer.fit(d, train_idx)
    rows = np.concatenate([np.arange(d.offsets[i], d.offsets[i + 1]) for i in train_idx])
    assert np.allclose(norm.imu[0], np.nanmean(d.imu[rows], axis=0), atol=1e-3)
    other = DS.Normalizer.fit(d, val_idx)
    assert not np.allclose(norm.imu[0], other.imu[0])


def test_dataset_truncates_to_the_end_and_pads_with_mask(synth):
    d = D.load_dir(synth, cache_dir=None)
    long_seq = int(np.argmax(d.lengths))
    short_seq = int(np.argmin(d.lengths))
    norm = DS.Normalizer.fit(d, np.arange(d.n_sequences))
    cfg = DataConfig(max_len=32)
    ds = DS.SequenceDataset(d, np.array([long_seq, short_seq]), norm, cfg)
    item = ds[0]
    assert len(item["imu"]) == 32
    end = d.offsets[long_seq + 1]
    expected = (d.imu[end - 32 : end] - norm.imu[0]) / norm.imu[1]
    assert np.allclose(item["imu"], np.nan_to_num(expected), atol=1e-5)  # the last 32 steps
    batch = DS.collate([ds[0], ds[1]])
    n_short = min(32, d.lengths[short_seq])
    assert batch["imu"].shape == (2, 32, len(F.IMU_FEATURES))
    assert batch["valid"][1].sum() == n_short and not batch["valid"][1, n_short:].any()
    assert int(batch["y18"][0]) == d.gesture[long_seq]
    imu_cfg = DataConfig(max_len=32, modalities="imu")
    item = DS.SequenceDataset(d, np.array([long_seq]), norm, imu_cfg)[0]
    assert not item["tof"].any() and not item["present"][:, 1:].any()


def test_folds_grouped_stratified_deterministic(synth):
    d = D.load_dir(synth, cache_dir=None)
    folds = subject_folds(d, 2, seed=1)
    again = subject_folds(d, 2, seed=1)
    for (a_tr, a_va), (_, b_va) in zip(folds, again, strict=True):
        np.testing.assert_array_equal(a_va, b_va)
        assert not set(d.subject[a_tr]) & set(d.subject[a_va])  # no subject on both sides
    all_val = np.sort(np.concatenate([va for _, va in folds]))
    np.testing.assert_array_equal(all_val, np.arange(d.n_sequences))
    # The seed matters: on 4 subjects two seeds may well draw the same split (scikit-learn 1.5's
    # StratifiedGroupKFold does for 1 and 2), ten cannot all.
    others = [subject_folds(d, 2, seed=s) for s in range(2, 12)]
    assert any(not np.array_equal(a[1], b[1]) for o in others for a, b in zip(folds, o, strict=True))
    with pytest.raises(InputError, match="5 folds need at least 5 subjects"):
        subject_folds(d, 5, seed=0)


def test_inspect_prints_summary(synth, capsys):
    assert main(["inspect", "--data", str(synth)]) == 0
    out = capsys.readouterr().out
    assert "sequences" in out and "subjects 4" in out and "IMU-only" in out and "Wave hello" in out


# ------------------------------------------------------------------ bounds: what the real data has is accepted


def test_values_at_the_bounds_are_accepted(small_frames, tmp_path):
    """The edges of every bound, ToF "no response", NaN rotation/thermopiles/ToF: data, not errors."""
    train, demo = small_frames
    t = train.copy()
    t.loc[t.index[1], ["acc_x", "acc_y", "acc_z"]] = [V.ACC_LIMIT, -V.ACC_LIMIT, 0.0]
    t.loc[t.index[2], ["thm_1", "thm_2"]] = list(V.THM_RANGE)
    t.loc[t.index[3], ["tof_1_v0", "tof_1_v1", "tof_1_v2"]] = [-1.0, 0.0, V.TOF_MAX]
    t.loc[t.index[4], ["rot_w", "rot_x", "rot_y", "rot_z"]] = [1.09, 0.0, 0.0, 0.0]
    t.loc[t.index[5], ["rot_w", "rot_x", "rot_y", "rot_z"]] = np.nan
    t.loc[t.index[6], ["rot_x"]] = np.nan  # a partly empty quaternion is a missing one
    t.loc[t.index[7], ["thm_3", "tof_2_v3"]] = np.nan
    d = D.load_dir(write(tmp_path / "d", t, demo), cache_dir=None)
    assert d.imu[1, 0] == V.ACC_LIMIT and d.thm[2, 0] == V.THM_RANGE[0]
    assert list(d.tof[3, :3]) == [V.TOF_FAR, 0.0, V.TOF_MAX]
    assert not d.present[5, 0] and not d.present[6, 0] and d.present[4, 0]
    assert np.isfinite(d.imu[4]).all()


def test_byte_order_mark_and_quoted_header_are_accepted(small_frames, tmp_path):
    train, demo = small_frames
    folder = write(tmp_path / "d", train, demo)
    path = folder / "train.csv"
    header, rest = path.read_text().split("\n", 1)
    quoted = ",".join(f'"{c}"' for c in header.split(","))
    path.write_bytes(b"\xef\xbb\xbf" + (quoted + "\n" + rest).encode())
    assert D.load_dir(folder, cache_dir=None).n_sequences == train["sequence_id"].nunique()


# ------------------------------------------------------------------ errors name the line in the file


def test_line_numbers_are_file_lines_when_sequences_interleave(small_frames, tmp_path, capsys):
    """Rows are regrouped by sequence; the message still names the line of the file."""
    train, demo = small_frames
    seqs = train["sequence_id"].unique()
    a, b = train[train["sequence_id"] == seqs[0]], train[train["sequence_id"] == seqs[1]]
    n = min(len(a), len(b))
    mixed = pd.concat([a.iloc[:n], b.iloc[:n]])
    order = np.ravel(np.column_stack([np.arange(n), n + np.arange(n)]))
    mixed = mixed.iloc[order].reset_index(drop=True)  # a0, b0, a1, b1, ...
    mixed.loc[5, "tof_4_v9"] = 999.0  # b2, line 7
    mixed.loc[8, "tof_4_v9"] = 999.0  # a4, line 10: later in the file, earlier in sequence order
    code, err = run_inspect(write(tmp_path / "d", mixed, demo), capsys)
    assert code == 2 and f"column 'tof_4_v9', line 7, sequence {seqs[1]}:" in err, err


def test_unreadable_file_is_one_line(small_frames, tmp_path, capsys, monkeypatch):
    """chmod 000 does not stop root (CI): raise the PermissionError open() would give a user."""
    train, demo = small_frames
    folder = write(tmp_path / "d", train, demo)

    def no_permission(path, *args, **kwargs):
        if Path(path).name == "train.csv":
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(D, "open", no_permission, raising=False)
    code, err = run_inspect(folder, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert err.endswith("train.csv: cannot read the file: Permission denied"), err


def test_header_read_is_bounded(tmp_path, monkeypatch):
    """A 64 MB file without a line end fails after reading about 1 MB, not the whole file."""
    path = tmp_path / "train.csv"
    with open(path, "wb") as f:
        f.truncate(64 << 20)  # sparse: NUL bytes
    reads = []

    class Counting:
        def __init__(self, *args):
            self.f = open(*args)  # noqa: SIM115

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def readline(self, limit=-1):
            line = self.f.readline(limit)
            reads.append(len(line))
            return line

    monkeypatch.setattr(R, "open", Counting, raising=False)
    with pytest.raises(InputError, match="line 1 is not a CSV header: no line end within the first 1 MB"):
        R.read_header(path)
    assert 0 < sum(reads) <= R.HEADER_LIMIT + 1


@pytest.mark.parametrize("value", [255.0, -0.5, -2.0, np.inf, -np.inf])
def test_tof_outside_the_sensor_range_first_in_file_order(value):
    """255 is not a reading (-1 becomes 255 internally), nor anything negative but -1; the error names
    the first bad value in file order, though rows are grouped by sequence."""
    tof = np.asfortranarray(np.full((4, 320), -1.0, dtype=np.float32))  # the layout _to_matrix gives
    tof[1, 10] = 7.0
    tof[2, 5] = tof[3, 2] = value
    where = V.Where(np.array(["S0", "S0", "S1", "S1"], dtype=object), np.array([0, 1, 3, 2]))
    with pytest.raises(
        InputError, match=r"'tof_1_v2', line 4, sequence S1: value -?(inf|[0-9.]+) is neither"
    ):
        V.check_tof(Path("train.csv"), tof, where)


def test_tof_no_response_becomes_far():
    tof = np.asfortranarray(np.tile(np.array([-1.0, 0.0, 254.0, np.nan], dtype=np.float32), (4, 80)))
    V.check_tof(Path("train.csv"), tof, V.Where(np.array(["S"] * 4, dtype=object), None))
    assert not (tof == -1).any() and (tof == V.TOF_FAR).sum() == 320 and np.isnan(tof).sum() == 320
    assert (tof == 0).sum() == 320 and (tof == 254).sum() == 320


def _batches_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("modalities", ["all", "imu"])
def test_tensor_batches_are_the_dataloaders_batches(synth, shuffle, modalities):
    """Prepared once and gathered by index: bit for bit what DataLoader + collate yields for the
    same seed, epoch after epoch (long sequences cut to their end, short ones padded)."""
    d = D.load_dir(synth, cache_dir=None)
    train_idx, _ = subject_folds(d, 2, seed=0)[0]
    norm = DS.Normalizer.fit(d, train_idx)
    cfg = DataConfig(max_len=40, batch_size=16, modalities=modalities)
    assert (d.lengths[train_idx] > 40).any() and (d.lengths[train_idx] < 40).any()
    loader = DS.make_loader(d, train_idx, norm, cfg, shuffle=shuffle, seed=11)
    batches = DS.TensorBatches(DS.prepare_tensors(d, train_idx, norm, cfg), 16, shuffle=shuffle, seed=11)
    iter(batches)  # Lightning's "is it iterable?" check must not use up a permutation
    assert len(batches) == len(loader)
    for _ in range(3):
        for a, b in zip(loader, batches, strict=True):
            _batches_equal(a, b)


def test_tensor_batches_cover_every_sequence_once_per_epoch_deterministic_per_seed(synth):
    d = D.load_dir(synth, cache_dir=None)
    idx = np.arange(0, d.n_sequences, 2)
    tensors = DS.prepare_tensors(d, idx, DS.Normalizer.fit(d, idx), DataConfig(max_len=32))

    def epochs(seed: int, n: int = 3) -> list[list[int]]:
        it = DS.TensorBatches(tensors, 7, shuffle=True, seed=seed)
        return [[i for b in it for i in b["index"].tolist()] for _ in range(n)]

    first = epochs(5)
    for order in first:
        assert sorted(order) == idx.tolist()  # every training sequence exactly once
    assert first == epochs(5)  # same seed, same batches
    assert first != epochs(6) and first[0] != first[1]  # another seed, another epoch: another order
    plain = DS.TensorBatches(tensors, 7, shuffle=False)
    assert [i for b in plain for i in b["index"].tolist()] == idx.tolist()


def test_fold_cache_equals_a_fresh_preparation_and_prepares_once(synth):
    d = D.load_dir(synth, cache_dir=None)
    fit_idx, val_idx = subject_folds(d, 2, seed=0)[0]
    cfg = DataConfig(max_len=32)
    cache = DS.FoldCache()
    got = cache.tensors(d, val_idx, fit_idx, cfg)
    fresh = DS.prepare_tensors(d, val_idx, DS.Normalizer.fit(d, fit_idx), cfg)
    for key in ("imu", "thm", "tof", "present", "lengths", "index"):
        assert torch.equal(getattr(got, key), getattr(fresh, key)), key
    assert all(torch.equal(got.labels[k], fresh.labels[k]) for k in fresh.labels)
    # Normalised with the fit indices' statistics, not the validation fold's own.
    assert not torch.equal(got.imu, DS.prepare_tensors(d, val_idx, DS.Normalizer.fit(d, val_idx), cfg).imu)
    assert cache.tensors(d, val_idx.copy(), fit_idx.copy(), cfg) is got  # equal indices: a hit
    assert (cache.builds, cache.hits) == (1, 1) and cache.nbytes == got.nbytes > 0
    cache.tensors(d, val_idx, fit_idx, DataConfig(max_len=24))  # another DataConfig
    cache.tensors(d, val_idx, val_idx, cfg)  # another normaliser
    relabeled = dataclasses.replace(d, gesture=np.roll(d.gesture, 1))  # same files' fingerprint
    assert torch.equal(
        cache.tensors(relabeled, val_idx, fit_idx, cfg).labels["y18"],
        torch.from_numpy(relabeled.gesture[val_idx]),
    )
    assert (cache.builds, cache.hits) == (4, 1)
    small = DS.FoldCache(max_bytes=got.nbytes - 1)  # too big to keep: prepared, used, not kept
    small.tensors(d, val_idx, fit_idx, cfg)
    small.tensors(d, val_idx, fit_idx, cfg)
    assert (small.builds, small.hits, small.nbytes) == (2, 0, 0)
