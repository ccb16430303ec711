"""Embedded synthetic data set: the four Kaggle CMI files, same schema, made-up people.

The project must run its demo and tests without the real competition files, so this
module writes ``train.csv``, ``train_demographics.csv``, ``test.csv`` and
``test_demographics.csv`` with exactly the real columns, value formats and missing-data
patterns (see ``shared/cmi_facts.md``). The column names come from ``cmi_model.schema``,
the single definition the loader uses too.

The signals are simulated, not noise, so that model comparisons mean something:

* a wrist device whose orientation is ``heading ⊗ posture ⊗ arm(t)``; the accelerometer
  reads ``R(q)^T [0, 0, 9.81]`` plus the arm's linear acceleration, so quaternion and
  gravity agree and each body orientation puts gravity somewhere else;
* each sequence: (relax,) move the hand to a gesture-specific location, hold, then a
  gesture-specific oscillation (frequency, axis, amplitude, rotation, asymmetry);
* target gestures end at the head: ToF sensors see a close blob, thermopiles warm toward
  skin temperature; most non-targets stay far/cold, but drinking and glasses come close;
* confusable pairs (eyebrow/eyelash, neck pinch/scratch, forehead scratch/hairline) share
  a location and differ only a little in motion and blob position;
* subjects differ in size, speed, amplitude, posture and handedness (left-handed
  subjects mirror the lateral axis: ``acc_x``, ``rot_y``, ``rot_z`` and the ToF columns).

Difficulty was calibrated with per-sequence summary features and a gradient-boosted
classifier under subject-grouped CV: all sensors score clearly above IMU-only, and both
well below 1.0. Generation is vectorised over all rows of a chunk of sequences; a chunk's
noise comes from its own seeded stream, so the output bytes depend only on the arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cmi_model.errors import InputError
from cmi_model.labels import (
    BINARY_CLASSES,
    GESTURE_INDEX,
    GESTURES,
    NON_TARGET_GESTURES,
    TARGET_GESTURES,
    is_target,
)
from cmi_model.schema import (  # noqa: F401  (re-exported: tests and users read the schema here too)
    ACC_COLUMNS,
    BEHAVIORS,
    DEMOGRAPHICS_COLUMNS,
    N_TOF_SENSORS,
    ORIENTATIONS,
    PHASES,
    ROT_COLUMNS,
    SENSOR_COLUMNS,
    TEST_COLUMNS,
    THM_COLUMNS,
    TOF_COLUMNS,
    TOF_NO_RESPONSE,
    TOF_PIXELS,
    TRAIN_COLUMNS,
)

# --------------------------------------------------------------------------- schema

# Column names and categorical values come from cmi_model.schema (shared with the loader).
N_TOF_PIXELS = TOF_PIXELS
N_THM = len(THM_COLUMNS)
IMU_COLUMNS: list[str] = ACC_COLUMNS + ROT_COLUMNS
TOF_MISSING = TOF_NO_RESPONSE

# The 51 (orientation, gesture) pairs. The real set is not documented in our facts; this
# table follows its shape: every target in every orientation (32), all 10 non-targets
# seated straight, and a few everyday non-targets in other orientations (9) = 51.
_EXTRA_NON_TARGET_ORIENTATIONS: dict[str, tuple[str, ...]] = {
    "Text on phone": ORIENTATIONS[1:],
    "Write name in air": ORIENTATIONS[1:],
    "Wave hello": ORIENTATIONS[1:3],
    "Pull air toward your face": ORIENTATIONS[2:3],
}
PAIRS: tuple[tuple[str, str], ...] = (
    tuple((o, g) for o in ORIENTATIONS for g in TARGET_GESTURES)
    + tuple((ORIENTATIONS[0], g) for g in NON_TARGET_GESTURES)
    + tuple((o, g) for g, os in _EXTRA_NON_TARGET_ORIENTATIONS.items() for o in os)
)
assert len(PAIRS) == 51 and len(set(PAIRS)) == 51

# Real sizes (shared/cmi_facts.md): 81 subjects, 8,151 sequences, 574,945 rows.
FULL_SIZE_SUBJECTS = 81
DT = 0.1  # seconds per row
GRAVITY = 9.81

# --------------------------------------------------------------------------- gestures


@dataclass(frozen=True)
class _Motion:
    """What one gesture looks like to the device (angles in rad, accelerations in m/s²)."""

    loc: tuple[float, float, float]  # arm (roll, pitch, yaw) change from rest to the location
    freq: float  # Hz of the gesture-phase oscillation
    rot: tuple[float, float, float]  # oscillation amplitude of the arm angles
    axis: tuple[float, float, float]  # device-frame direction of the linear oscillation
    amp: float  # linear oscillation amplitude
    harm: float  # 2nd-harmonic share: asymmetric "pull" strokes vs symmetric scratching
    irr: float  # incommensurate 3rd component: irregular motions like writing
    prox: float  # 0 nothing in ToF range .. 1 touching
    center: tuple[float, float]  # (row, col) of the surface blob on the 8x8 grid
    tof_motion: tuple[float, float]  # blob displacement (rows, cols) during the gesture
    vis: tuple[float, float, float, float, float]  # how much each ToF/thermopile sees the surface
    heat: float  # thermopile warming gain toward skin temperature
    length: float = 1.0  # sequence-length factor


# Sensor views of head locations differ only a little: the blob, not the pattern, says where.
_HEAD5 = (1.0, 0.8, 0.72, 0.71, 0.65)
_FOREHEAD5 = (1.0, 0.82, 0.62, 0.75, 0.79)
_NECK5 = (1.0, 0.86, 0.54, 0.79, 0.71)
_LEG5 = (1.0, 0.6, 0.6, 0.6, 0.6)
# fmt: off
_MOTIONS: dict[str, _Motion] = {
    # targets: hand at the head, close blob, warm thermopiles
    "Above ear - pull hair":    _Motion((0.9, 1.6, 0.3), 0.9, (0.05, 0.12, 0.03), (0.2, 0.3, 0.9), 2.2, 0.5, 0.0, 0.85, (2.5, 3.5), (0.8, 0.2), (1.0, 0.86, 0.58, 0.55, 0.75), 0.8),
    "Cheek - pinch skin":       _Motion((0.5, 1.45, 0.75), 1.6, (0.04, 0.03, 0.06), (0.8, 0.2, 0.4), 1.0, 0.2, 0.0, 0.95, (4.0, 3.5), (0.3, 0.3), (1.0, 0.82, 0.7, 0.67, 0.67), 0.9),
    "Eyebrow - pull hair":      _Motion((0.3, 1.75, 0.85), 1.1, (0.03, 0.10, 0.04), (0.1, 0.9, 0.4), 1.6, 0.5, 0.0, 0.90, (3.0, 3.5), (0.6, 0.2), _HEAD5, 0.85),
    "Eyelash - pull hair":      _Motion((0.3, 1.72, 0.9), 1.25, (0.03, 0.08, 0.04), (0.15, 0.9, 0.35), 1.3, 0.5, 0.0, 0.93, (4.0, 3.5), (0.5, 0.2), _HEAD5, 0.85),
    "Forehead - pull hairline": _Motion((0.1, 1.9, 0.9), 1.0, (0.03, 0.12, 0.03), (0.1, 0.9, 0.3), 1.9, 0.55, 0.0, 0.88, (2.2, 3.5), (0.9, 0.2), _FOREHEAD5, 0.8),
    "Forehead - scratch":       _Motion((0.1, 1.9, 0.9), 1.3, (0.05, 0.08, 0.04), (0.35, 0.8, 0.3), 1.9, 0.3, 0.0, 0.90, (2.8, 3.5), (0.5, 0.6), _FOREHEAD5, 0.8),
    "Neck - pinch skin":        _Motion((0.6, 1.25, 0.45), 1.3, (0.04, 0.04, 0.05), (0.7, 0.3, 0.6), 1.0, 0.3, 0.0, 0.92, (4.5, 3.5), (0.3, 0.3), _NECK5, 0.9),
    "Neck - scratch":           _Motion((0.6, 1.25, 0.45), 1.7, (0.07, 0.05, 0.04), (0.8, 0.4, 0.4), 1.5, 0.1, 0.0, 0.90, (4.5, 3.5), (0.3, 0.8), _NECK5, 0.88),
    # non-targets touching the face partly resemble targets
    "Drink from bottle/cup":    _Motion((0.4, 1.35, 0.6), 0.25, (0.05, 0.5, 0.05), (0.2, 0.5, 0.8), 0.8, 0.0, 0.0, 0.60, (5.0, 3.5), (1.0, 0.2), (0.8, 0.6, 0.3, 0.5, 0.4), 0.45),
    "Glasses on/off":           _Motion((0.45, 1.7, 0.8), 0.45, (0.1, 0.1, 0.1), (0.6, 0.6, 0.4), 1.4, 0.3, 0.0, 0.70, (3.2, 3.0), (0.8, 1.0), (1.0, 0.6, 0.7, 0.5, 0.5), 0.5),
    "Pull air toward your face": _Motion((0.2, 1.15, 0.4), 0.7, (0.05, 0.25, 0.05), (0.1, 0.3, 0.95), 3.0, 0.3, 0.0, 0.35, (3.5, 3.5), (1.0, 0.3), (0.8, 0.5, 0.5, 0.5, 0.5), 0.15),
    # hand on the leg: a mid-distance surface through clothing, a little warmth
    "Pinch knee/leg skin":      _Motion((0.0, 0.1, 0.1), 1.3, (0.04, 0.04, 0.05), (0.7, 0.3, 0.6), 1.0, 0.3, 0.0, 0.55, (3.5, 3.5), (0.3, 0.3), _LEG5, 0.3),
    "Scratch knee/leg skin":    _Motion((0.0, 0.1, 0.1), 1.8, (0.07, 0.05, 0.04), (0.8, 0.4, 0.4), 1.6, 0.1, 0.0, 0.50, (3.5, 3.5), (0.3, 0.8), _LEG5, 0.28),
    "Write name on leg":        _Motion((0.0, 0.15, 0.15), 0.9, (0.06, 0.06, 0.08), (0.7, 0.7, 0.1), 1.2, 0.2, 0.8, 0.45, (3.5, 3.5), (0.6, 0.6), _LEG5, 0.25, 1.3),
    # away from the body: ToF mostly no response, thermopiles at air temperature
    "Text on phone":            _Motion((-0.3, 0.7, 0.2), 2.8, (0.02, 0.02, 0.02), (0.1, 0.2, 0.97), 0.5, 0.1, 0.5, 0.25, (4.5, 3.5), (0.2, 0.2), (0.7, 0.3, 0.3, 0.3, 0.3), 0.08, 1.2),
    "Feel around in tray and pull out an object": _Motion((0.0, 0.4, -0.2), 0.6, (0.1, 0.1, 0.15), (0.6, 0.6, 0.5), 1.8, 0.3, 0.7, 0.40, (5.0, 3.5), (1.0, 1.0), (0.9, 0.5, 0.5, 0.5, 0.5), 0.1, 1.2),
    "Write name in air":        _Motion((0.0, 1.0, 0.3), 1.0, (0.1, 0.1, 0.1), (0.7, 0.7, 0.2), 2.2, 0.2, 0.8, 0.0, (3.5, 3.5), (0.0, 0.0), (0.0, 0.0, 0.0, 0.0, 0.0), 0.0, 1.2),
    "Wave hello":               _Motion((1.2, 1.6, 0.0), 1.9, (0.35, 0.05, 0.05), (1.0, 0.1, 0.1), 3.5, 0.1, 0.0, 0.0, (3.5, 3.5), (0.0, 0.0), (0.0, 0.0, 0.0, 0.0, 0.0), 0.0, 0.9),
}
# fmt: on
assert set(_MOTIONS) == set(GESTURES)


def _gesture_table(field: str) -> np.ndarray:
    """One motion field for all 18 gestures, indexed by GESTURE_INDEX."""
    return np.array([getattr(_MOTIONS[g], field) for g in GESTURES], dtype=np.float64)


_LOC, _FREQ, _ROT, _AXIS = (_gesture_table(f) for f in ("loc", "freq", "rot", "axis"))
_AXIS = _AXIS / np.linalg.norm(_AXIS, axis=1, keepdims=True)
_AMP, _HARM, _IRR, _PROX = (_gesture_table(f) for f in ("amp", "harm", "irr", "prox"))
_CENTER, _TOF_MOTION, _VIS = (_gesture_table(f) for f in ("center", "tof_motion", "vis"))
_HEAT, _LENGTH = _gesture_table("heat"), _gesture_table("length")

# Body posture per orientation as (roll, pitch, yaw): where gravity points for the body.
_POSTURE = np.array([(0.0, 0.0, 0.0), (-0.5, 0.8, 0.0), (0.0, -1.45, 0.0), (-1.45, -1.45, 0.0)])
_REST = np.array([0.2, -0.9, 0.0])  # arm angles with the hand resting on the lap
_MOVE_DIR = np.array([0.3, 0.2, 0.93])  # device-frame direction of the move's acceleration
# ToF sensor k looks slightly aside, so one surface lands at a shifted grid position.
_TOF_OFFSET = np.array([(0.0, 0.0), (0.0, 2.5), (2.5, 0.0), (0.0, -2.5), (-2.5, 0.0)])
_THM_OFFSET = np.array([0.0, -0.3, 0.2, -0.15, 0.35])  # per-thermopile calibration offset

# --------------------------------------------------------------------------- noise knobs
# Calibrated so a small model lands well inside (0, 1) and IMU-only stays harder.
SUBJECT_POSE_SD = 0.35  # rad: each subject's own resting/target posture
SEQ_POSE_SD = 0.3  # rad: per-sequence posture wobble
LOC_SD = 0.25  # relative jitter of the move to the location
SUBJECT_SPEED_SD = 0.15  # log-sd of each subject's speed
SEQ_FREQ_SD = 0.2  # log-sd of a sequence's gesture frequency
SUBJECT_AMP_SD = 0.25  # log-sd of each subject's amplitude
SEQ_AMP_SD = 0.2  # log-sd of a sequence's amplitude
ACC_NOISE = 0.25  # m/s²
ANGLE_NOISE = 0.01  # rad
SUBJECT_TOF_SHIFT_SD = 1.0  # px: how each subject wears the device
TOF_CENTER_SD = 2.2  # px: where the blob lands in a sequence
PROX_SD = 0.45  # log-sd of closeness
VIS_SD = 0.5  # log-sd of each sensor's view of the surface in a sequence
HEAT_SD = 0.4  # log-sd of thermopile warming (hair, sleeves, contact)
TOF_NOISE = 8.0  # ToF units
TOF_DROPOUT = 0.03  # pixels that miss a return
THM_NOISE = 0.08  # °C

# Missing data rates.
ROT_NAN_RATE = 0.006  # ~50 of 8,151 real training sequences
THM_DROP_RATE = 0.03  # one thermopile missing for a whole sequence or a stretch of rows
TOF_DROP_RATE = 0.03  # one ToF sensor (all 64 pixels) missing likewise
TEST_IMU_ONLY_RATE = 0.5
SEQUENCE_DROP_RATE = 0.013  # 81 subjects x 51 pairs x 2 = 8,262 planned; ~8,151 kept

# Sequence length: 28 + lognormal, clipped to [29, 700] (real min 29, median 59, mean ~71).
MIN_LEN, MAX_LEN = 29, 700
LEN_LOG_MU, LEN_LOG_SD = np.log(31.0), 0.8

_CHUNK = 256  # sequences simulated together; fixed, because chunk noise streams depend on it

# --------------------------------------------------------------------------- quaternions


def _euler_to_quat(roll: np.ndarray, pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z) of yaw(z) ⊗ pitch(y) ⊗ roll(x)."""
    cr, sr = np.cos(roll / 2), np.sin(roll / 2)
    cp, sp = np.cos(pitch / 2), np.sin(pitch / 2)
    cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
    return np.stack(
        [
            cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        ],
        axis=-1,
    )


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (..., 4) quaternions."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def gravity_in_device(q: np.ndarray) -> np.ndarray:
    """(N, 3) = R(q)^T [0, 0, 9.81]: what a resting accelerometer reads for orientation q."""
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return GRAVITY * np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1)


# --------------------------------------------------------------------------- subjects


@dataclass
class _Subjects:
    ids: np.ndarray  # (S,) int, the 6 digits of SUBJ_xxxxxx
    demo: dict[str, np.ndarray]  # demographics columns (without subject)
    speed: np.ndarray  # (S,) gesture speed multiplier
    amp: np.ndarray  # (S,) motion amplitude multiplier
    pose: np.ndarray  # (S, 3) posture offset, rad
    heading: np.ndarray  # (S,) world yaw of the seat/bed, rad
    air: np.ndarray  # (S,) room temperature, °C
    skin: np.ndarray  # (S,) skin temperature, °C
    tof_shift: np.ndarray  # (S, 2) px, where the device sits on the wrist
    left: np.ndarray  # (S,) bool, left-handed


def _make_subjects(rng: np.random.Generator, ids: np.ndarray) -> _Subjects:
    n = len(ids)
    adult = rng.random(n) < 0.5
    age = np.where(adult, np.round(18 + rng.gamma(2.0, 7.0, n)).clip(18, 60), rng.integers(10, 18, n))
    sex = (rng.random(n) < 0.6).astype(np.int64)
    right = rng.random(n) < 0.88
    if n >= 4 and right.all():  # keep at least one mirrored subject in non-tiny sets
        right[rng.integers(n)] = False
    adult_height = np.where(sex == 1, 176.0, 163.0) + rng.normal(0, 7, n)
    child_height = 135.0 + 4.5 * (age - 10) + np.where(sex == 1, 2.0, 0.0) + rng.normal(0, 6, n)
    height = np.round(np.where(adult, adult_height, child_height), 1)
    shoulder = np.round(0.335 * height + rng.normal(0, 1.5, n))
    elbow = np.round(0.155 * height + rng.normal(0, 1.0, n), 1)
    demo = {
        "adult_child": adult.astype(np.int64),
        "age": age.astype(np.int64),
        "sex": sex,
        "handedness": right.astype(np.int64),
        "height_cm": height,
        "shoulder_to_wrist_cm": shoulder.astype(np.int64),
        "elbow_to_wrist_cm": elbow,
    }
    return _Subjects(
        ids=ids,
        demo=demo,
        speed=np.exp(rng.normal(0, SUBJECT_SPEED_SD, n)) * np.where(adult, 1.0, 1.1),
        amp=np.exp(rng.normal(0, SUBJECT_AMP_SD, n)) * shoulder / 56.0,
        pose=rng.normal(0, SUBJECT_POSE_SD, (n, 3)),
        heading=rng.uniform(-np.pi, np.pi, n),
        air=rng.uniform(22.0, 26.0, n),
        skin=rng.uniform(30.0, 34.0, n),
        tof_shift=rng.normal(0, SUBJECT_TOF_SHIFT_SD, (n, 2)),
        left=~right,
    )


# --------------------------------------------------------------------------- sequence plan


@dataclass
class _Plan:
    """Per-sequence parameters of one file (train or test), sorted by sequence id."""

    seq_id: np.ndarray
    subj: np.ndarray  # index into _Subjects
    gesture: np.ndarray  # index into GESTURES
    orient: np.ndarray  # index into ORIENTATIONS
    behav: np.ndarray  # 0 relaxes-and-moves, 1 moves
    length: np.ndarray
    n1: np.ndarray  # rows of the initial behaviour
    n2: np.ndarray  # rows of "Hand at target location"
    relax: np.ndarray  # share of the initial behaviour spent relaxing before moving
    freq: np.ndarray  # Hz
    amp: np.ndarray  # amplitude multiplier
    phase: np.ndarray  # (n, 3) oscillation phases
    pose: np.ndarray  # (n, 3) subject + sequence posture offset
    loc: np.ndarray  # (n, 3) jittered location move
    heading: np.ndarray
    sway: np.ndarray  # (n, 2) slow body sway amplitude, frequency
    prox: np.ndarray  # closeness multiplier
    center: np.ndarray  # (n, 2) blob centre jitter, px
    vis: np.ndarray  # (n, 5) per-sensor view multiplier
    heat: np.ndarray  # thermopile warming multiplier
    air: np.ndarray
    skin: np.ndarray
    tau: np.ndarray  # s, thermopile warming time constant
    left: np.ndarray
    imu_only: np.ndarray
    rot_nan: np.ndarray
    thm_drop: np.ndarray  # (n, 3): sensor (-1 none), first row, end row
    tof_drop: np.ndarray  # (n, 3)

    def __len__(self) -> int:
        return len(self.seq_id)


def _make_plan(
    rng: np.random.Generator,
    subjects: _Subjects,
    seq_ids: np.ndarray,
    *,
    per_subject: tuple[int, int] | None,
    imu_only_rate: float,
) -> _Plan:
    """Every subject does every (orientation, gesture) pair with both initial behaviours;
    train drops a few at random, test (``per_subject`` = (lo, hi)) keeps a few dozen."""
    pair_orient = np.array([ORIENTATIONS.index(o) for o, _ in PAIRS])
    pair_gesture = np.array([GESTURE_INDEX[g] for _, g in PAIRS])
    n_subj, n_slots = len(subjects.ids), 2 * len(PAIRS)
    slots = np.arange(n_slots)
    chosen = []
    for s in range(n_subj):
        if per_subject is None:
            keep = slots[rng.random(n_slots) >= SEQUENCE_DROP_RATE]
        else:
            keep = np.sort(rng.choice(n_slots, size=int(rng.integers(*per_subject)), replace=False))
        chosen.append(np.stack([np.full(len(keep), s), keep], axis=1))
    cs = np.concatenate(chosen)
    n = len(cs)
    subj, pair, behav = cs[:, 0], cs[:, 1] // 2, cs[:, 1] % 2
    gesture, orient = pair_gesture[pair], pair_orient[pair]
    # the ids are random, so file order (sorted by id) mixes subjects as the real one does
    seq_id = np.asarray(seq_ids)[:n]

    speed = subjects.speed[subj]
    raw = np.exp(rng.normal(LEN_LOG_MU, LEN_LOG_SD, n)) * _LENGTH[gesture] / speed
    length = np.clip(np.round(MIN_LEN - 1 + raw), MIN_LEN, MAX_LEN).astype(np.int64)
    n3 = np.maximum(10, np.round(length * rng.uniform(0.35, 0.6, n))).astype(np.int64)
    n2 = np.maximum(2, np.round(length * rng.uniform(0.06, 0.2, n))).astype(np.int64)
    n1 = length - n2 - n3

    def drop(rate: float, n_sensors: int) -> np.ndarray:
        out = np.full((n, 3), -1, dtype=np.int64)
        hit = rng.random(n) < rate
        sensor = rng.integers(0, n_sensors, n)
        whole = rng.random(n) < 0.5
        a = (rng.random(n) * length * 0.7).astype(np.int64)
        b = np.minimum(length, a + 5 + (rng.random(n) * length * 0.5).astype(np.int64))
        out[hit, 0] = sensor[hit]
        out[hit, 1] = np.where(whole, 0, a)[hit]
        out[hit, 2] = np.where(whole, length, b)[hit]
        return out

    plan = _Plan(
        seq_id=seq_id,
        subj=subj,
        gesture=gesture,
        orient=orient,
        behav=behav,
        length=length,
        n1=n1,
        n2=n2,
        relax=np.where(behav == 0, rng.uniform(0.3, 0.55, n), rng.uniform(0.0, 0.1, n)),
        freq=_FREQ[gesture] * speed * np.exp(rng.normal(0, SEQ_FREQ_SD, n)),
        amp=subjects.amp[subj] * np.exp(rng.normal(0, SEQ_AMP_SD, n)),
        phase=rng.uniform(0, 2 * np.pi, (n, 3)),
        pose=subjects.pose[subj] + rng.normal(0, SEQ_POSE_SD, (n, 3)),
        loc=_LOC[gesture] * (1 + rng.normal(0, LOC_SD, (n, 3))),
        heading=subjects.heading[subj] + rng.normal(0, 0.3, n),
        sway=np.stack([rng.uniform(0.0, 0.06, n), rng.uniform(0.05, 0.3, n)], axis=1),
        prox=np.exp(rng.normal(0, PROX_SD, n)),
        center=subjects.tof_shift[subj] + rng.normal(0, TOF_CENTER_SD, (n, 2)),
        vis=np.exp(rng.normal(0, VIS_SD, (n, N_TOF_SENSORS))),
        heat=np.exp(rng.normal(0, HEAT_SD, n)),
        air=subjects.air[subj] + rng.normal(0, 0.5, n),
        skin=subjects.skin[subj] + rng.normal(0, 0.4, n),
        tau=rng.uniform(0.8, 2.0, n),
        left=subjects.left[subj],
        imu_only=rng.random(n) < imu_only_rate,
        rot_nan=rng.random(n) < ROT_NAN_RATE,
        thm_drop=drop(THM_DROP_RATE, N_THM),
        tof_drop=drop(TOF_DROP_RATE, N_TOF_SENSORS),
    )
    order = np.argsort(plan.seq_id, kind="stable")
    for name, value in vars(plan).items():
        setattr(plan, name, value[order])
    return plan


# --------------------------------------------------------------------------- simulation


def _simulate(plan: _Plan, idx: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Sensor rows for the sequences ``idx`` of ``plan``, all rows at once."""
    L = plan.length[idx]
    n = int(L.sum())
    k = np.repeat(np.arange(len(idx)), L)  # (N,) row -> sequence within the chunk
    starts = np.cumsum(L) - L
    c = np.arange(n) - starts[k]  # sequence_counter
    at = idx[k]  # row -> sequence in the plan

    def per_row(a: np.ndarray) -> np.ndarray:
        return a[at]

    g = per_row(plan.gesture)
    n1, n2 = per_row(plan.n1), per_row(plan.n2)
    behaviour = np.where(c < n1, per_row(plan.behav), np.where(c < n1 + n2, 2, 3))
    t = c * DT

    # Move to the location: smoothstep u from the end of relaxing to the end of the initial behaviour.
    move_start = per_row(plan.relax) * n1
    move_len = np.maximum(n1 - move_start, 1.0)
    u = np.clip((c - move_start) / move_len, 0.0, 1.0)
    s = u * u * (3 - 2 * u)
    moving = (u > 0) & (u < 1)
    move_acc = np.where(moving, (6 - 12 * u) / (move_len * DT) ** 2, 0.0) * 0.6  # 0.6 m of travel

    # Gesture oscillation, faded in over ~0.3 s.
    tg = np.maximum(c - n1 - n2, 0) * DT
    gesture_on = (behaviour == 3) * (1 - np.exp(-tg / 0.3))
    ph = plan.phase[at]
    wt = 2 * np.pi * per_row(plan.freq) * tg
    wave = (
        np.sin(wt + ph[:, 0]) + _HARM[g] * np.sin(2 * wt + ph[:, 1]) + _IRR[g] * np.sin(2.7 * wt + ph[:, 2])
    )
    wave_lin = (
        np.cos(wt + ph[:, 0]) + _HARM[g] * np.cos(2 * wt + ph[:, 1]) + _IRR[g] * np.cos(2.7 * wt + ph[:, 2])
    )
    amp = per_row(plan.amp)
    wave = wave * gesture_on
    wave_lin = wave_lin * gesture_on * amp

    # Orientation: heading ⊗ posture ⊗ arm(t).
    sway = plan.sway[at]
    sway_angle = sway[:, 0] * np.sin(2 * np.pi * sway[:, 1] * t + ph[:, 2])
    arm = (
        _REST
        + plan.pose[at]
        + s[:, None] * plan.loc[at]
        + _ROT[g] * (wave * np.minimum(amp, 1.6))[:, None]
        + sway_angle[:, None]
        + rng.normal(0, ANGLE_NOISE, (n, 3))
    )
    q_arm = _euler_to_quat(arm[:, 0], arm[:, 1], arm[:, 2])
    posture = _POSTURE[per_row(plan.orient)]
    q_post = _euler_to_quat(posture[:, 0], posture[:, 1], posture[:, 2])
    zero = np.zeros(n)
    q_head = _euler_to_quat(zero, zero, per_row(plan.heading))
    q = _quat_mul(q_head, _quat_mul(q_post, q_arm))
    q /= np.linalg.norm(q, axis=1, keepdims=True)

    lin = _AXIS[g] * (_AMP[g] * wave_lin)[:, None] + _MOVE_DIR * move_acc[:, None]
    acc = gravity_in_device(q) + lin + rng.normal(0, ACC_NOISE, (n, 3))

    # Left-handed subjects wear the device on the other wrist: mirror x (R -> M R M).
    left = per_row(plan.left)
    acc[left, 0] *= -1
    q[left, 2:] *= -1
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)  # canonical w >= 0

    # ToF: a surface blob per sensor; close surfaces are near (small values) and wide.
    closeness = np.clip(_PROX[g] * per_row(plan.prox) * s**2 * (1 + 0.08 * wave), 0.0, 1.0)
    vis = np.clip(_VIS[g] * plan.vis[at], 0.0, 1.0)  # (N, 5)
    p = closeness[:, None] * vis
    centre = _CENTER[g] + plan.center[at] + _TOF_MOTION[g] * wave[:, None]  # (N, 2) row, col
    cy = centre[:, None, 0] + _TOF_OFFSET[:, 0]  # (N, 5)
    cx = centre[:, None, 1] + _TOF_OFFSET[:, 1]
    cx = np.where(left[:, None], 7.0 - cx, cx)  # mirrored device, mirrored grid
    pix = np.arange(N_TOF_PIXELS)
    r2 = (pix // 8 - cy[:, :, None]) ** 2 + (pix % 8 - cx[:, :, None]) ** 2  # (N, 5, 64)
    radius2 = (0.8 + 5.5 * p) ** 2
    d0 = 12.0 + 230.0 * (1.0 - p)
    tof = d0[:, :, None] + r2 * (45.0 / radius2)[:, :, None] + rng.normal(0, TOF_NOISE, r2.shape)
    seen = (r2 <= radius2[:, :, None]) & (p[:, :, None] > 0.08) & (tof <= 254.0)
    seen &= rng.random(r2.shape) >= TOF_DROPOUT
    tof = np.where(seen, np.clip(np.round(tof), 0, 254), TOF_MISSING).reshape(n, -1)

    # Thermopiles: warm toward skin temperature after the hand arrives, with a lag.
    arrive = (move_start + 0.5 * move_len) * DT
    warm = 1 - np.exp(-np.maximum(t - arrive, 0.0) / per_row(plan.tau))
    heat = _HEAT[g] * per_row(plan.heat) * np.clip(per_row(plan.prox), 0, 1.2) * warm * (1 + 0.04 * wave)
    heat = np.clip(heat[:, None] * vis, 0.0, 1.0)
    air, skin = per_row(plan.air), per_row(plan.skin)
    heat[left] = heat[left][:, ::-1]  # the side thermopiles swap sides too (1 <-> 5, 2 <-> 4)
    thm = air[:, None] + (skin - air)[:, None] * heat + _THM_OFFSET + rng.normal(0, THM_NOISE, (n, N_THM))

    # Missing data.
    acc = np.round(acc, 4)
    rot = np.round(q, 6)
    rot[per_row(plan.rot_nan)] = np.nan
    thm = np.round(thm, 4)
    tof = tof.astype(np.float32)
    for name, arr, width in (("thm_drop", thm, 1), ("tof_drop", tof, N_TOF_PIXELS)):
        d = getattr(plan, name)[at]
        rows = np.flatnonzero((d[:, 0] >= 0) & (c >= d[:, 1]) & (c < d[:, 2]))
        cols = d[rows, 0][:, None] * width + np.arange(width)
        arr[rows[:, None], cols] = np.nan
    imu_only = per_row(plan.imu_only)
    thm[imu_only] = np.nan
    tof[imu_only] = np.nan
    return {"counter": c, "k": k, "behaviour": behaviour, "acc": acc, "rot": rot, "thm": thm, "tof": tof}


# --------------------------------------------------------------------------- writing


def _schema(columns: list[str]) -> pa.Schema:
    fields = []
    for col in columns:
        if col == "sequence_counter":
            typ = pa.int64()
        elif col.startswith("tof_"):
            typ = pa.int16()
        elif col in IMU_COLUMNS or col in THM_COLUMNS:
            typ = pa.float64()
        else:
            typ = pa.string()
        fields.append(pa.field(col, typ))
    return pa.schema(fields)


def _float_array(x: np.ndarray) -> pa.Array:
    return pa.array(x, type=pa.float64(), from_pandas=True)  # NaN -> null -> empty field


def _table(plan: _Plan, subjects: _Subjects, idx: np.ndarray, sim: dict, columns: list[str]) -> pa.Table:
    k = pa.array(sim["k"])
    g = plan.gesture[idx]
    seq_str = pa.array([f"SEQ_{i:06d}" for i in plan.seq_id[idx]]).take(k)
    counter = pa.array(sim["counter"], type=pa.int64())
    padded = pc.utf8_lpad(pc.cast(counter, pa.string()), width=6, padding="0")
    cols: dict[str, pa.Array] = {
        "row_id": pc.binary_join_element_wise(seq_str, padded, "_"),
        "sequence_id": seq_str,
        "sequence_counter": counter,
        "subject": pa.array([f"SUBJ_{subjects.ids[s]:06d}" for s in plan.subj[idx]]).take(k),
    }
    if "gesture" in columns:
        cols["sequence_type"] = pa.array([BINARY_CLASSES[int(is_target(GESTURES[i]))] for i in g]).take(k)
        cols["orientation"] = pa.array([ORIENTATIONS[i] for i in plan.orient[idx]]).take(k)
        behaviour = pa.array(sim["behaviour"])
        cols["behavior"] = pa.array(BEHAVIORS).take(behaviour)
        cols["phase"] = pa.array(PHASES).take(pc.cast(pc.equal(behaviour, 3), pa.int8()))
        cols["gesture"] = pa.array([GESTURES[i] for i in g]).take(k)
    for j, col in enumerate(ACC_COLUMNS):
        cols[col] = _float_array(sim["acc"][:, j])
    for j, col in enumerate(ROT_COLUMNS):
        cols[col] = _float_array(sim["rot"][:, j])
    for j, col in enumerate(THM_COLUMNS):
        cols[col] = _float_array(sim["thm"][:, j])
    tof = np.ascontiguousarray(sim["tof"].T)  # (320, N)
    missing = np.isnan(tof)
    values = np.where(missing, 0, tof).astype(np.int16)
    for j, col in enumerate(TOF_COLUMNS):
        mask = missing[j] if missing[j].any() else None
        cols[col] = pa.array(values[j], type=pa.int16(), mask=mask)
    return pa.Table.from_arrays([cols[c] for c in columns], schema=_schema(columns))


def _write_sensor_csv(
    path: Path, plan: _Plan, subjects: _Subjects, columns: list[str], seed: int, split: int
) -> int:
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as f:
        f.write((",".join(columns) + "\n").encode())
        with pacsv.CSVWriter(f, _schema(columns), write_options=options) as writer:
            for chunk, lo in enumerate(range(0, len(plan), _CHUNK)):
                idx = np.arange(lo, min(lo + _CHUNK, len(plan)))
                rng = np.random.default_rng([seed, split, chunk])
                writer.write_table(_table(plan, subjects, idx, _simulate(plan, idx, rng), columns))
    return int(plan.length.sum())


def _write_demographics(path: Path, subjects: _Subjects) -> None:
    order = np.argsort(subjects.ids)
    arrays = [pa.array([f"SUBJ_{i:06d}" for i in subjects.ids[order]])]
    arrays += [pa.array(subjects.demo[c][order]) for c in DEMOGRAPHICS_COLUMNS[1:]]
    table = pa.Table.from_arrays(arrays, names=DEMOGRAPHICS_COLUMNS)
    with open(path, "wb") as f:
        f.write((",".join(DEMOGRAPHICS_COLUMNS) + "\n").encode())
        pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style="none"))


# --------------------------------------------------------------------------- public API


def n_test_subjects(n_train_subjects: int) -> int:
    """How many (different) subjects the test files hold."""
    return max(2, n_train_subjects // 6)


def _build(n_subjects: int, seed: int) -> tuple[tuple[_Subjects, _Plan], tuple[_Subjects, _Plan]]:
    """Subjects and sequence plans of train and test; cheap (no rows simulated yet)."""
    rng = np.random.default_rng(seed)
    n_test = n_test_subjects(n_subjects)
    subject_ids = rng.choice(1_000_000, size=n_subjects + n_test, replace=False)
    train_subjects = _make_subjects(rng, subject_ids[:n_subjects])
    test_subjects = _make_subjects(rng, subject_ids[n_subjects:])
    max_train = n_subjects * 2 * len(PAIRS)
    seq_ids = rng.choice(1_000_000, size=max_train + n_test * 2 * len(PAIRS), replace=False)
    train_plan = _make_plan(rng, train_subjects, seq_ids[:max_train], per_subject=None, imu_only_rate=0.0)
    test_plan = _make_plan(
        rng, test_subjects, seq_ids[max_train:], per_subject=(24, 48), imu_only_rate=TEST_IMU_ONLY_RATE
    )
    return (train_subjects, train_plan), (test_subjects, test_plan)


def generate(out_dir: str | Path, *, n_subjects: int = 12, full_size: bool = False, seed: int = 0) -> dict:
    """Write train.csv, train_demographics.csv, test.csv and test_demographics.csv to ``out_dir``.

    ``full_size`` ignores ``n_subjects`` and writes the real training size (81 subjects,
    ~8,151 sequences, ~575k rows). The same arguments always give the same bytes.
    Returns ``{"out_dir", "seed", "train": {...}, "test": {...}}`` where each split has
    ``path``, ``demographics_path``, ``n_sequences``, ``n_rows`` and ``n_subjects``.
    """
    if full_size:
        n_subjects = FULL_SIZE_SUBJECTS
    if n_subjects < 1:
        raise InputError(f"n_subjects must be at least 1, got {n_subjects}")
    if seed < 0:
        raise InputError(f"--seed must be non-negative, got {seed}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (train_subjects, train_plan), (test_subjects, test_plan) = _build(n_subjects, seed)
    summary: dict = {"out_dir": str(out), "seed": seed}
    for split, (name, plan, subjects, columns) in enumerate(
        (
            ("train", train_plan, train_subjects, TRAIN_COLUMNS),
            ("test", test_plan, test_subjects, TEST_COLUMNS),
        )
    ):
        path, demo_path = out / f"{name}.csv", out / f"{name}_demographics.csv"
        n_rows = _write_sensor_csv(path, plan, subjects, columns, seed, split)
        _write_demographics(demo_path, subjects)
        summary[name] = {
            "path": str(path),
            "demographics_path": str(demo_path),
            "n_sequences": len(plan),
            "n_rows": n_rows,
            "n_subjects": len(subjects.ids),
        }
    return summary
