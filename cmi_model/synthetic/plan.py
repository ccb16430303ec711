"""Who is in the synthetic data set and which sequences they perform.

Everything drawn once per subject or once per sequence lives here, in a `Plan`: it is
cheap (no rows yet), so tests can check the full-size plan without simulating it. The
draws come from one generator in a fixed order; changing the order changes every file.
"""

from dataclasses import dataclass

import numpy as np

from cmi_model.labels import GESTURE_INDEX, NON_TARGET_GESTURES, TARGET_GESTURES
from cmi_model.schema import N_TOF_SENSORS, ORIENTATIONS, THM_COLUMNS
from cmi_model.synthetic import motions

# The 51 (orientation, gesture) pairs. Only their count is known for the real files; this
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

# The real training set: 81 subjects, 8,151 sequences, 574,945 rows.
FULL_SIZE_SUBJECTS = 81

# Subject and sequence variation, calibrated (with the row noise in `simulate`) so that a
# small model scores well inside (0, 1) and IMU-only input stays harder than all sensors.
SUBJECT_POSE_SD = 0.35  # rad: each subject's own resting/target posture
SEQ_POSE_SD = 0.3  # rad: per-sequence posture wobble
LOC_SD = 0.25  # relative jitter of the move to the location
SUBJECT_SPEED_SD = 0.15  # log-sd of each subject's speed
SEQ_FREQ_SD = 0.2  # log-sd of a sequence's gesture frequency
SUBJECT_AMP_SD = 0.25  # log-sd of each subject's amplitude
SEQ_AMP_SD = 0.2  # log-sd of a sequence's amplitude
SUBJECT_TOF_SHIFT_SD = 1.0  # px: how each subject wears the device
TOF_CENTER_SD = 2.2  # px: where the blob lands in a sequence
PROX_SD = 0.45  # log-sd of closeness
VIS_SD = 0.5  # log-sd of each sensor's view of the surface in a sequence
HEAT_SD = 0.4  # log-sd of thermopile warming (hair, sleeves, contact)

# Missing data rates.
ROT_NAN_RATE = 0.006  # ~50 of 8,151 real training sequences
THM_DROP_RATE = 0.03  # one thermopile missing for a whole sequence or a stretch of rows
TOF_DROP_RATE = 0.03  # one ToF sensor (all 64 pixels) missing likewise
TEST_IMU_ONLY_RATE = 0.5
SEQUENCE_DROP_RATE = 0.013  # 81 subjects x 51 pairs x 2 = 8,262 planned; ~8,151 kept

# Sequence length: 28 + lognormal, clipped to [29, 700] (real min 29, median 59, mean ~71).
MIN_LEN, MAX_LEN = 29, 700
LEN_LOG_MU, LEN_LOG_SD = np.log(31.0), 0.8


@dataclass
class Subjects:
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


def make_subjects(rng: np.random.Generator, ids: np.ndarray) -> Subjects:
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
    return Subjects(
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


@dataclass
class Plan:
    """Per-sequence parameters of one file (train or test), sorted by sequence id."""

    seq_id: np.ndarray
    subj: np.ndarray  # index into Subjects
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


def _choose_slots(
    rng: np.random.Generator, n_subjects: int, per_subject: tuple[int, int] | None
) -> np.ndarray:
    """(n, 2): subject index and slot (pair * 2 + initial behaviour) of every sequence."""
    n_slots = 2 * len(PAIRS)
    slots = np.arange(n_slots)
    chosen = []
    for s in range(n_subjects):
        if per_subject is None:
            keep = slots[rng.random(n_slots) >= SEQUENCE_DROP_RATE]
        else:
            keep = np.sort(rng.choice(n_slots, size=int(rng.integers(*per_subject)), replace=False))
        chosen.append(np.stack([np.full(len(keep), s), keep], axis=1))
    return np.concatenate(chosen)


def _dropouts(rng: np.random.Generator, length: np.ndarray, rate: float, n_sensors: int) -> np.ndarray:
    """(n, 3): which sensor drops out (-1 none), from which row, to which row (exclusive)."""
    n = len(length)
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


def make_plan(
    rng: np.random.Generator,
    subjects: Subjects,
    seq_ids: np.ndarray,
    *,
    per_subject: tuple[int, int] | None,
    imu_only_rate: float,
) -> Plan:
    """Every subject does every (orientation, gesture) pair with both initial behaviours;
    train drops a few at random, test (``per_subject`` = (lo, hi)) keeps a few dozen."""
    pair_orient = np.array([ORIENTATIONS.index(o) for o, _ in PAIRS])
    pair_gesture = np.array([GESTURE_INDEX[g] for _, g in PAIRS])
    cs = _choose_slots(rng, len(subjects.ids), per_subject)
    n = len(cs)
    subj, pair, behav = cs[:, 0], cs[:, 1] // 2, cs[:, 1] % 2
    gesture, orient = pair_gesture[pair], pair_orient[pair]
    # the ids are random, so file order (sorted by id) mixes subjects as the real one does
    seq_id = np.asarray(seq_ids)[:n]

    speed = subjects.speed[subj]
    raw = np.exp(rng.normal(LEN_LOG_MU, LEN_LOG_SD, n)) * motions.LENGTH[gesture] / speed
    length = np.clip(np.round(MIN_LEN - 1 + raw), MIN_LEN, MAX_LEN).astype(np.int64)
    n3 = np.maximum(10, np.round(length * rng.uniform(0.35, 0.6, n))).astype(np.int64)
    n2 = np.maximum(2, np.round(length * rng.uniform(0.06, 0.2, n))).astype(np.int64)
    # Keyword arguments are evaluated in order: this order is the order of the random draws.
    plan = Plan(
        seq_id=seq_id,
        subj=subj,
        gesture=gesture,
        orient=orient,
        behav=behav,
        length=length,
        n1=length - n2 - n3,
        n2=n2,
        relax=np.where(behav == 0, rng.uniform(0.3, 0.55, n), rng.uniform(0.0, 0.1, n)),
        freq=motions.FREQ[gesture] * speed * np.exp(rng.normal(0, SEQ_FREQ_SD, n)),
        amp=subjects.amp[subj] * np.exp(rng.normal(0, SEQ_AMP_SD, n)),
        phase=rng.uniform(0, 2 * np.pi, (n, 3)),
        pose=subjects.pose[subj] + rng.normal(0, SEQ_POSE_SD, (n, 3)),
        loc=motions.LOC[gesture] * (1 + rng.normal(0, LOC_SD, (n, 3))),
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
        thm_drop=_dropouts(rng, length, THM_DROP_RATE, len(THM_COLUMNS)),
        tof_drop=_dropouts(rng, length, TOF_DROP_RATE, N_TOF_SENSORS),
    )
    order = np.argsort(plan.seq_id, kind="stable")
    for name, value in vars(plan).items():
        setattr(plan, name, value[order])
    return plan


def n_test_subjects(n_train_subjects: int) -> int:
    """How many (different) subjects the test files hold."""
    return max(2, n_train_subjects // 6)


def build_plans(n_subjects: int, seed: int) -> tuple[tuple[Subjects, Plan], tuple[Subjects, Plan]]:
    """Subjects and sequence plans of train and test; cheap (no rows simulated yet)."""
    rng = np.random.default_rng(seed)
    n_test = n_test_subjects(n_subjects)
    subject_ids = rng.choice(1_000_000, size=n_subjects + n_test, replace=False)
    train_subjects = make_subjects(rng, subject_ids[:n_subjects])
    test_subjects = make_subjects(rng, subject_ids[n_subjects:])
    max_train = n_subjects * 2 * len(PAIRS)
    seq_ids = rng.choice(1_000_000, size=max_train + n_test * 2 * len(PAIRS), replace=False)
    train_plan = make_plan(rng, train_subjects, seq_ids[:max_train], per_subject=None, imu_only_rate=0.0)
    test_plan = make_plan(
        rng, test_subjects, seq_ids[max_train:], per_subject=(24, 48), imu_only_rate=TEST_IMU_ONLY_RATE
    )
    return (train_subjects, train_plan), (test_subjects, test_plan)
