"""What each gesture looks like to the wrist device: one `Motion` per gesture.

The table is the generator's ground truth: where the hand goes, how it oscillates there,
and what the ToF sensors and thermopiles see. Confusable pairs (eyebrow/eyelash, neck
pinch/scratch, forehead scratch/hairline) share a location and differ only a little in
motion and blob position. `simulate` reads it through the per-gesture arrays at the end.
"""

from dataclasses import dataclass

import numpy as np

from cmi_model.labels import GESTURES


@dataclass(frozen=True, kw_only=True)
class Motion:
    """One gesture (angles in rad, accelerations in m/s²)."""

    loc: tuple[float, float, float]  # arm (roll, pitch, yaw) change from rest to the location
    freq: float  # Hz of the gesture-phase oscillation
    rot: tuple[float, float, float]  # oscillation amplitude of the arm angles
    axis: tuple[float, float, float]  # device-frame direction of the linear oscillation
    amp: float  # linear oscillation amplitude
    harm: float  # 2nd-harmonic share: asymmetric "pull" strokes vs symmetric scratching
    irr: float = 0.0  # incommensurate 3rd component: irregular motions like writing
    length: float = 1.0  # sequence-length factor
    prox: float  # 0 nothing in ToF range .. 1 touching
    center: tuple[float, float]  # (row, col) of the surface blob on the 8x8 grid
    tof_motion: tuple[float, float]  # blob displacement (rows, cols) during the gesture
    vis: tuple[float, float, float, float, float]  # how much each ToF/thermopile sees the surface
    heat: float  # thermopile warming gain toward skin temperature


# Sensor views of head locations differ only a little: the blob, not the pattern, says where.
_HEAD5 = (1.0, 0.8, 0.72, 0.71, 0.65)
_FOREHEAD5 = (1.0, 0.82, 0.62, 0.75, 0.79)
_NECK5 = (1.0, 0.86, 0.54, 0.79, 0.71)
_LEG5 = (1.0, 0.6, 0.6, 0.6, 0.6)

# Each entry: the arm's move and oscillation; their size, shape and length; what the sensors see.
# fmt: off
MOTIONS: dict[str, Motion] = {
    # targets: hand at the head, close blob, warm thermopiles
    "Above ear - pull hair": Motion(
        loc=(0.9, 1.6, 0.3), freq=0.9, rot=(0.05, 0.12, 0.03), axis=(0.2, 0.3, 0.9),
        amp=2.2, harm=0.5,
        prox=0.85, center=(2.5, 3.5), tof_motion=(0.8, 0.2), vis=(1.0, 0.86, 0.58, 0.55, 0.75), heat=0.8,
    ),
    "Cheek - pinch skin": Motion(
        loc=(0.5, 1.45, 0.75), freq=1.6, rot=(0.04, 0.03, 0.06), axis=(0.8, 0.2, 0.4),
        amp=1.0, harm=0.2,
        prox=0.95, center=(4.0, 3.5), tof_motion=(0.3, 0.3), vis=(1.0, 0.82, 0.7, 0.67, 0.67), heat=0.9,
    ),
    "Eyebrow - pull hair": Motion(
        loc=(0.3, 1.75, 0.85), freq=1.1, rot=(0.03, 0.1, 0.04), axis=(0.1, 0.9, 0.4),
        amp=1.6, harm=0.5,
        prox=0.9, center=(3.0, 3.5), tof_motion=(0.6, 0.2), vis=_HEAD5, heat=0.85,
    ),
    "Eyelash - pull hair": Motion(
        loc=(0.3, 1.72, 0.9), freq=1.25, rot=(0.03, 0.08, 0.04), axis=(0.15, 0.9, 0.35),
        amp=1.3, harm=0.5,
        prox=0.93, center=(4.0, 3.5), tof_motion=(0.5, 0.2), vis=_HEAD5, heat=0.85,
    ),
    "Forehead - pull hairline": Motion(
        loc=(0.1, 1.9, 0.9), freq=1.0, rot=(0.03, 0.12, 0.03), axis=(0.1, 0.9, 0.3),
        amp=1.9, harm=0.55,
        prox=0.88, center=(2.2, 3.5), tof_motion=(0.9, 0.2), vis=_FOREHEAD5, heat=0.8,
    ),
    "Forehead - scratch": Motion(
        loc=(0.1, 1.9, 0.9), freq=1.3, rot=(0.05, 0.08, 0.04), axis=(0.35, 0.8, 0.3),
        amp=1.9, harm=0.3,
        prox=0.9, center=(2.8, 3.5), tof_motion=(0.5, 0.6), vis=_FOREHEAD5, heat=0.8,
    ),
    "Neck - pinch skin": Motion(
        loc=(0.6, 1.25, 0.45), freq=1.3, rot=(0.04, 0.04, 0.05), axis=(0.7, 0.3, 0.6),
        amp=1.0, harm=0.3,
        prox=0.92, center=(4.5, 3.5), tof_motion=(0.3, 0.3), vis=_NECK5, heat=0.9,
    ),
    "Neck - scratch": Motion(
        loc=(0.6, 1.25, 0.45), freq=1.7, rot=(0.07, 0.05, 0.04), axis=(0.8, 0.4, 0.4),
        amp=1.5, harm=0.1,
        prox=0.9, center=(4.5, 3.5), tof_motion=(0.3, 0.8), vis=_NECK5, heat=0.88,
    ),
    # non-targets touching the face partly resemble targets
    "Drink from bottle/cup": Motion(
        loc=(0.4, 1.35, 0.6), freq=0.25, rot=(0.05, 0.5, 0.05), axis=(0.2, 0.5, 0.8),
        amp=0.8, harm=0.0,
        prox=0.6, center=(5.0, 3.5), tof_motion=(1.0, 0.2), vis=(0.8, 0.6, 0.3, 0.5, 0.4), heat=0.45,
    ),
    "Glasses on/off": Motion(
        loc=(0.45, 1.7, 0.8), freq=0.45, rot=(0.1, 0.1, 0.1), axis=(0.6, 0.6, 0.4),
        amp=1.4, harm=0.3,
        prox=0.7, center=(3.2, 3.0), tof_motion=(0.8, 1.0), vis=(1.0, 0.6, 0.7, 0.5, 0.5), heat=0.5,
    ),
    "Pull air toward your face": Motion(
        loc=(0.2, 1.15, 0.4), freq=0.7, rot=(0.05, 0.25, 0.05), axis=(0.1, 0.3, 0.95),
        amp=3.0, harm=0.3,
        prox=0.35, center=(3.5, 3.5), tof_motion=(1.0, 0.3), vis=(0.8, 0.5, 0.5, 0.5, 0.5), heat=0.15,
    ),
    # hand on the leg: a mid-distance surface through clothing, a little warmth
    "Pinch knee/leg skin": Motion(
        loc=(0.0, 0.1, 0.1), freq=1.3, rot=(0.04, 0.04, 0.05), axis=(0.7, 0.3, 0.6),
        amp=1.0, harm=0.3,
        prox=0.55, center=(3.5, 3.5), tof_motion=(0.3, 0.3), vis=_LEG5, heat=0.3,
    ),
    "Scratch knee/leg skin": Motion(
        loc=(0.0, 0.1, 0.1), freq=1.8, rot=(0.07, 0.05, 0.04), axis=(0.8, 0.4, 0.4),
        amp=1.6, harm=0.1,
        prox=0.5, center=(3.5, 3.5), tof_motion=(0.3, 0.8), vis=_LEG5, heat=0.28,
    ),
    "Write name on leg": Motion(
        loc=(0.0, 0.15, 0.15), freq=0.9, rot=(0.06, 0.06, 0.08), axis=(0.7, 0.7, 0.1),
        amp=1.2, harm=0.2, irr=0.8, length=1.3,
        prox=0.45, center=(3.5, 3.5), tof_motion=(0.6, 0.6), vis=_LEG5, heat=0.25,
    ),
    # away from the body: ToF mostly no response, thermopiles at air temperature
    "Text on phone": Motion(
        loc=(-0.3, 0.7, 0.2), freq=2.8, rot=(0.02, 0.02, 0.02), axis=(0.1, 0.2, 0.97),
        amp=0.5, harm=0.1, irr=0.5, length=1.2,
        prox=0.25, center=(4.5, 3.5), tof_motion=(0.2, 0.2), vis=(0.7, 0.3, 0.3, 0.3, 0.3), heat=0.08,
    ),
    "Feel around in tray and pull out an object": Motion(
        loc=(0.0, 0.4, -0.2), freq=0.6, rot=(0.1, 0.1, 0.15), axis=(0.6, 0.6, 0.5),
        amp=1.8, harm=0.3, irr=0.7, length=1.2,
        prox=0.4, center=(5.0, 3.5), tof_motion=(1.0, 1.0), vis=(0.9, 0.5, 0.5, 0.5, 0.5), heat=0.1,
    ),
    "Write name in air": Motion(
        loc=(0.0, 1.0, 0.3), freq=1.0, rot=(0.1, 0.1, 0.1), axis=(0.7, 0.7, 0.2),
        amp=2.2, harm=0.2, irr=0.8, length=1.2,
        prox=0.0, center=(3.5, 3.5), tof_motion=(0.0, 0.0), vis=(0.0, 0.0, 0.0, 0.0, 0.0), heat=0.0,
    ),
    "Wave hello": Motion(
        loc=(1.2, 1.6, 0.0), freq=1.9, rot=(0.35, 0.05, 0.05), axis=(1.0, 0.1, 0.1),
        amp=3.5, harm=0.1, length=0.9,
        prox=0.0, center=(3.5, 3.5), tof_motion=(0.0, 0.0), vis=(0.0, 0.0, 0.0, 0.0, 0.0), heat=0.0,
    ),
}
# fmt: on
assert set(MOTIONS) == set(GESTURES)


def _gesture_table(field: str) -> np.ndarray:
    """One motion field for all 18 gestures, indexed by GESTURE_INDEX."""
    return np.array([getattr(MOTIONS[g], field) for g in GESTURES], dtype=np.float64)


LOC, FREQ, ROT, AXIS = (_gesture_table(f) for f in ("loc", "freq", "rot", "axis"))
AXIS = AXIS / np.linalg.norm(AXIS, axis=1, keepdims=True)
AMP, HARM, IRR, PROX = (_gesture_table(f) for f in ("amp", "harm", "irr", "prox"))
CENTER, TOF_MOTION, VIS = (_gesture_table(f) for f in ("center", "tof_motion", "vis"))
HEAT, LENGTH = _gesture_table("heat"), _gesture_table("length")
