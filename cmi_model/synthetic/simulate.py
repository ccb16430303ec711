"""Sensor rows of planned sequences: orientation, accelerometer, ToF and thermopiles.

Vectorised over every row of a chunk of sequences. Each step below draws its row noise
from the chunk's generator in a fixed order (orientation, accelerometer, ToF, ToF
dropout, thermopiles): that order is part of the output bytes.
"""

from dataclasses import dataclass

import numpy as np

from cmi_model.features import euler_to_quat, gravity_in_device, quat_mul
from cmi_model.schema import THM_COLUMNS, TOF_NO_RESPONSE, TOF_PIXELS
from cmi_model.synthetic import motions as M
from cmi_model.synthetic.plan import Plan

DT = 0.1  # seconds per row

# Body posture per orientation as (roll, pitch, yaw): where gravity points for the body.
_POSTURE = np.array([(0.0, 0.0, 0.0), (-0.5, 0.8, 0.0), (0.0, -1.45, 0.0), (-1.45, -1.45, 0.0)])
_REST = np.array([0.2, -0.9, 0.0])  # arm angles with the hand resting on the lap
_MOVE_DIR = np.array([0.3, 0.2, 0.93])  # device-frame direction of the move's acceleration
# ToF sensor k looks slightly aside, so one surface lands at a shifted grid position.
_TOF_OFFSET = np.array([(0.0, 0.0), (0.0, 2.5), (2.5, 0.0), (0.0, -2.5), (-2.5, 0.0)])
_THM_OFFSET = np.array([0.0, -0.3, 0.2, -0.15, 0.35])  # per-thermopile calibration offset

# Row noise, calibrated together with the variation in `plan`.
ACC_NOISE = 0.25  # m/s²
ANGLE_NOISE = 0.01  # rad
TOF_NOISE = 8.0  # ToF units
TOF_DROPOUT = 0.03  # pixels that miss a return
THM_NOISE = 0.08  # °C


@dataclass
class _Rows:
    """Which sequence and step each row of the chunk is, and the timeline of its motion."""

    plan: Plan
    at: np.ndarray  # row -> sequence in the plan
    k: np.ndarray  # row -> sequence within the chunk
    c: np.ndarray  # sequence_counter
    g: np.ndarray  # gesture index
    behaviour: np.ndarray  # index into BEHAVIORS
    t: np.ndarray  # s since the start of the sequence
    move_start: np.ndarray  # row at which the move to the location starts
    move_len: np.ndarray  # rows the move takes
    s: np.ndarray  # 0 .. 1: how far the hand has moved to the location (smoothstep)
    move_acc: np.ndarray  # m/s² of the move, along _MOVE_DIR
    wave: np.ndarray  # the gesture oscillation, 0 before the gesture
    wave_lin: np.ndarray  # its linear-acceleration counterpart, times the amplitude

    @property
    def n(self) -> int:
        return len(self.c)

    def of(self, a: np.ndarray) -> np.ndarray:
        """A per-sequence plan field, repeated for each row."""
        return a[self.at]


def _rows(plan: Plan, idx: np.ndarray) -> _Rows:
    L = plan.length[idx]
    n = int(L.sum())
    k = np.repeat(np.arange(len(idx)), L)
    starts = np.cumsum(L) - L
    c = np.arange(n) - starts[k]
    at = idx[k]
    g = plan.gesture[at]
    n1, n2 = plan.n1[at], plan.n2[at]
    behaviour = np.where(c < n1, plan.behav[at], np.where(c < n1 + n2, 2, 3))

    # Move to the location: smoothstep u from the end of relaxing to the end of the initial behaviour.
    move_start = plan.relax[at] * n1
    move_len = np.maximum(n1 - move_start, 1.0)
    u = np.clip((c - move_start) / move_len, 0.0, 1.0)
    s = u * u * (3 - 2 * u)
    moving = (u > 0) & (u < 1)
    move_acc = np.where(moving, (6 - 12 * u) / (move_len * DT) ** 2, 0.0) * 0.6  # 0.6 m of travel

    # Gesture oscillation, faded in over ~0.3 s.
    tg = np.maximum(c - n1 - n2, 0) * DT
    gesture_on = (behaviour == 3) * (1 - np.exp(-tg / 0.3))
    ph = plan.phase[at]
    wt = 2 * np.pi * plan.freq[at] * tg
    h, i = M.HARM[g], M.IRR[g]
    wave = np.sin(wt + ph[:, 0]) + h * np.sin(2 * wt + ph[:, 1]) + i * np.sin(2.7 * wt + ph[:, 2])
    wave_lin = np.cos(wt + ph[:, 0]) + h * np.cos(2 * wt + ph[:, 1]) + i * np.cos(2.7 * wt + ph[:, 2])
    return _Rows(
        plan=plan,
        at=at,
        k=k,
        c=c,
        g=g,
        behaviour=behaviour,
        t=c * DT,
        move_start=move_start,
        move_len=move_len,
        s=s,
        move_acc=move_acc,
        wave=wave * gesture_on,
        wave_lin=wave_lin * gesture_on * plan.amp[at],
    )


def _orientation(r: _Rows, rng: np.random.Generator) -> np.ndarray:
    """(N, 4) unit quaternions: heading ⊗ posture ⊗ arm(t)."""
    sway = r.of(r.plan.sway)
    sway_angle = sway[:, 0] * np.sin(2 * np.pi * sway[:, 1] * r.t + r.of(r.plan.phase)[:, 2])
    arm = (
        _REST
        + r.of(r.plan.pose)
        + r.s[:, None] * r.of(r.plan.loc)
        + M.ROT[r.g] * (r.wave * np.minimum(r.of(r.plan.amp), 1.6))[:, None]
        + sway_angle[:, None]
        + rng.normal(0, ANGLE_NOISE, (r.n, 3))
    )
    q_arm = euler_to_quat(arm[:, 0], arm[:, 1], arm[:, 2])
    posture = _POSTURE[r.of(r.plan.orient)]
    q_post = euler_to_quat(posture[:, 0], posture[:, 1], posture[:, 2])
    zero = np.zeros(r.n)
    q_head = euler_to_quat(zero, zero, r.of(r.plan.heading))
    q = quat_mul(q_head, quat_mul(q_post, q_arm))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q


def _tof(r: _Rows, vis: np.ndarray, left: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 320): a surface blob per sensor; close surfaces are near (small values) and wide."""
    closeness = np.clip(M.PROX[r.g] * r.of(r.plan.prox) * r.s**2 * (1 + 0.08 * r.wave), 0.0, 1.0)
    p = closeness[:, None] * vis
    centre = M.CENTER[r.g] + r.of(r.plan.center) + M.TOF_MOTION[r.g] * r.wave[:, None]  # (N, 2) row, col
    cy = centre[:, None, 0] + _TOF_OFFSET[:, 0]  # (N, 5)
    cx = centre[:, None, 1] + _TOF_OFFSET[:, 1]
    cx = np.where(left[:, None], 7.0 - cx, cx)  # mirrored device, mirrored grid
    pix = np.arange(TOF_PIXELS)
    r2 = (pix // 8 - cy[:, :, None]) ** 2 + (pix % 8 - cx[:, :, None]) ** 2  # (N, 5, 64)
    radius2 = (0.8 + 5.5 * p) ** 2
    d0 = 12.0 + 230.0 * (1.0 - p)
    tof = d0[:, :, None] + r2 * (45.0 / radius2)[:, :, None] + rng.normal(0, TOF_NOISE, r2.shape)
    seen = (r2 <= radius2[:, :, None]) & (p[:, :, None] > 0.08) & (tof <= 254.0)
    seen &= rng.random(r2.shape) >= TOF_DROPOUT
    return np.where(seen, np.clip(np.round(tof), 0, 254), TOF_NO_RESPONSE).reshape(r.n, -1)


def _thermopiles(r: _Rows, vis: np.ndarray, left: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 5) °C: warm toward skin temperature after the hand arrives, with a lag."""
    arrive = (r.move_start + 0.5 * r.move_len) * DT
    warm = 1 - np.exp(-np.maximum(r.t - arrive, 0.0) / r.of(r.plan.tau))
    prox = np.clip(r.of(r.plan.prox), 0, 1.2)
    heat = M.HEAT[r.g] * r.of(r.plan.heat) * prox * warm * (1 + 0.04 * r.wave)
    heat = np.clip(heat[:, None] * vis, 0.0, 1.0)
    air, skin = r.of(r.plan.air), r.of(r.plan.skin)
    heat[left] = heat[left][:, ::-1]  # the side thermopiles swap sides too (1 <-> 5, 2 <-> 4)
    noise = rng.normal(0, THM_NOISE, (r.n, len(THM_COLUMNS)))
    return air[:, None] + (skin - air)[:, None] * heat + _THM_OFFSET + noise


def _blank_missing(r: _Rows, rot: np.ndarray, thm: np.ndarray, tof: np.ndarray) -> None:
    """NaN (an empty field in the file) where the plan drops a sensor, in place."""
    rot[r.of(r.plan.rot_nan)] = np.nan
    for name, arr, width in (("thm_drop", thm, 1), ("tof_drop", tof, TOF_PIXELS)):
        d = r.of(getattr(r.plan, name))
        rows = np.flatnonzero((d[:, 0] >= 0) & (r.c >= d[:, 1]) & (r.c < d[:, 2]))
        cols = d[rows, 0][:, None] * width + np.arange(width)
        arr[rows[:, None], cols] = np.nan
    imu_only = r.of(r.plan.imu_only)
    thm[imu_only] = np.nan
    tof[imu_only] = np.nan


def simulate(plan: Plan, idx: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Sensor rows for the sequences ``idx`` of ``plan``, all rows at once."""
    r = _rows(plan, idx)
    q = _orientation(r, rng)
    lin = M.AXIS[r.g] * (M.AMP[r.g] * r.wave_lin)[:, None] + _MOVE_DIR * r.move_acc[:, None]
    acc = gravity_in_device(q) + lin + rng.normal(0, ACC_NOISE, (r.n, 3))

    # Left-handed subjects wear the device on the other wrist: mirror x (R -> M R M).
    left = r.of(plan.left)
    acc[left, 0] *= -1
    q[left, 2:] *= -1
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)  # canonical w >= 0

    vis = np.clip(M.VIS[r.g] * r.of(plan.vis), 0.0, 1.0)  # (N, 5)
    tof = _tof(r, vis, left, rng).astype(np.float32)
    thm = np.round(_thermopiles(r, vis, left, rng), 4)
    rot = np.round(q, 6)
    _blank_missing(r, rot, thm, tof)
    return {
        "counter": r.c,
        "k": r.k,
        "behaviour": r.behaviour,
        "acc": np.round(acc, 4),
        "rot": rot,
        "thm": thm,
        "tof": tof,
    }
