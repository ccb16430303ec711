"""The 18 → 9 → 2 gesture hierarchy: the one source of truth for every label.

Targets come first so the 18-class order reads naturally, but nothing may rely on
position: the data labels, the metric and the KL term all go through the maps below.
(A public implementation sorted its classes alphabetically and then summed "the first
8" as targets in its KL term, comparing mismatched classes.)
"""

import numpy as np

TARGET_GESTURES: tuple[str, ...] = (
    "Above ear - pull hair",
    "Cheek - pinch skin",
    "Eyebrow - pull hair",
    "Eyelash - pull hair",
    "Forehead - pull hairline",
    "Forehead - scratch",
    "Neck - pinch skin",
    "Neck - scratch",
)
NON_TARGET_GESTURES: tuple[str, ...] = (
    "Drink from bottle/cup",
    "Glasses on/off",
    "Pull air toward your face",
    "Pinch knee/leg skin",
    "Scratch knee/leg skin",
    "Write name on leg",
    "Text on phone",
    "Feel around in tray and pull out an object",
    "Write name in air",
    "Wave hello",
)
GESTURES: tuple[str, ...] = TARGET_GESTURES + NON_TARGET_GESTURES

NON_TARGET = "non_target"
NINE_CLASSES: tuple[str, ...] = TARGET_GESTURES + (NON_TARGET,)
BINARY_CLASSES: tuple[str, ...] = ("Non-Target", "Target")  # index = is_target

GESTURE_INDEX: dict[str, int] = {g: i for i, g in enumerate(GESTURES)}
NINE_INDEX: dict[str, int] = {c: i for i, c in enumerate(NINE_CLASSES)}


def is_target(gesture: str) -> bool:
    """True for the 8 BFRB-like gestures; ValueError for anything not among the 18."""
    check_gesture(gesture)
    return gesture in TARGET_GESTURES


def nine_class_of(gesture: str) -> str:
    """The 9-class label of a gesture: itself if a target, else ``non_target``."""
    return gesture if is_target(gesture) else NON_TARGET


def check_gesture(gesture: str) -> None:
    if gesture not in GESTURE_INDEX:
        raise ValueError(f"unknown gesture {gesture!r}: not one of the 18 CMI gestures")


# Index maps derived from the strings above, never from positions.
EIGHTEEN_TO_NINE: np.ndarray = np.array([NINE_INDEX[nine_class_of(g)] for g in GESTURES], dtype=np.int64)
EIGHTEEN_TO_BINARY: np.ndarray = np.array([int(is_target(g)) for g in GESTURES], dtype=np.int64)


def aggregation_matrix() -> np.ndarray:
    """(18, 9) 0/1 matrix: p9 = p18 @ M sums each 18-class probability into its 9-class."""
    m = np.zeros((len(GESTURES), len(NINE_CLASSES)), dtype=np.float32)
    m[np.arange(len(GESTURES)), EIGHTEEN_TO_NINE] = 1.0
    return m
