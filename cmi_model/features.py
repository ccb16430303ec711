"""IMU features derived from the raw accelerometer and orientation quaternion, and the
quaternion maths behind them.

The synthetic generator builds its device orientation and accelerometer readings with
the same helpers, so "gravity as the device sees it" has one definition: a feature that
removes gravity removes exactly what the generator put in.

Quaternions are (w, x, y, z) arrays with the components on the last axis.
"""

import numpy as np

from cmi_model.schema import ACC_COLUMNS, ROT_COLUMNS

GRAVITY = 9.81  # m/s²
IMU_FEATURES = [
    *ACC_COLUMNS,
    *ROT_COLUMNS,
    "linacc_x",
    "linacc_y",
    "linacc_z",
    "acc_mag",
    "acc_jerk",
    "linacc_mag",
    "angvel_x",
    "angvel_y",
    "angvel_z",
    "ang_dist",
]


def euler_to_quat(roll: np.ndarray, pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions of yaw(z) ⊗ pitch(y) ⊗ roll(x)."""
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


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a ⊗ b of (..., 4) quaternions."""
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


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse rotation of a unit quaternion), in q's dtype."""
    return q * np.array([1, -1, -1, -1], dtype=q.dtype)


def gravity_in_device(q: np.ndarray) -> np.ndarray:
    """(N, 3) = R(q)^T [0, 0, g]: what a resting accelerometer reads for unit quaternions q.

    R^T e_z is the third row of R, so only that row is computed.
    """
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return GRAVITY * np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1)


def imu_features(acc: np.ndarray, rot: np.ndarray, first_row: np.ndarray) -> np.ndarray:
    """(N, 17): acc, quaternion, gravity-free acc, |acc|, jerk, |lin acc|, angular velocity, angle.

    `first_row` marks the first row of each sequence, where differences are 0.
    """
    q = rot / np.linalg.norm(rot, axis=1, keepdims=True)
    linacc = acc - gravity_in_device(q)
    acc_mag = np.linalg.norm(acc, axis=1)
    jerk = np.diff(acc_mag, prepend=acc_mag[:1])
    jerk[first_row] = 0.0
    # Rotation from the previous step p to this one: r = conj(p) ⊗ q.
    r = quat_mul(quat_conj(np.roll(q, 1, axis=0)), q)
    rw, rv = r[:, 0], r[:, 1:]
    sign = np.where(rw < 0, -1.0, 1.0)  # q and -q are the same rotation: take the short way
    rw, rv = rw * sign, rv * sign[:, None]
    vnorm = np.linalg.norm(rv, axis=1)
    angle = 2 * np.arctan2(vnorm, rw)
    with np.errstate(invalid="ignore", divide="ignore"):
        angvel = np.where(vnorm[:, None] > 1e-12, rv / vnorm[:, None] * angle[:, None], 0.0)
    angvel[first_row] = 0.0
    angle[first_row] = 0.0
    cols = [acc, rot, linacc, acc_mag[:, None], jerk[:, None], np.linalg.norm(linacc, axis=1)[:, None]]
    return np.concatenate([*cols, angvel, angle[:, None]], axis=1).astype(np.float32)
