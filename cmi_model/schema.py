"""Column names of the Kaggle CMI files: the one definition the loader and generator share."""

ID_COLUMNS = ["row_id", "sequence_type", "sequence_id", "sequence_counter", "subject"]
LABEL_COLUMNS = ["orientation", "behavior", "phase", "gesture"]
ACC_COLUMNS = ["acc_x", "acc_y", "acc_z"]
ROT_COLUMNS = ["rot_w", "rot_x", "rot_y", "rot_z"]
THM_COLUMNS = [f"thm_{i}" for i in range(1, 6)]
N_TOF_SENSORS, TOF_PIXELS = 5, 64  # each ToF sensor is an 8×8 grid, row-major from the top-left
TOF_COLUMNS = [f"tof_{s}_v{p}" for s in range(1, N_TOF_SENSORS + 1) for p in range(TOF_PIXELS)]
SENSOR_COLUMNS = ACC_COLUMNS + ROT_COLUMNS + THM_COLUMNS + TOF_COLUMNS  # 332

TRAIN_COLUMNS = ID_COLUMNS + LABEL_COLUMNS + SENSOR_COLUMNS  # 341, in file order
TEST_COLUMNS = ["row_id", "sequence_id", "sequence_counter", "subject"] + SENSOR_COLUMNS
DEMOGRAPHICS_COLUMNS = [
    "subject",
    "adult_child",
    "age",
    "sex",
    "handedness",
    "height_cm",
    "shoulder_to_wrist_cm",
    "elbow_to_wrist_cm",
]

SEQUENCE_TYPES = ("Non-Target", "Target")  # index = is_target
ORIENTATIONS = (
    "Seated Straight",
    "Seated Lean Non Dom - FACE DOWN",
    "Lie on Back",
    "Lie on Side - Non Dominant",
)
BEHAVIORS = (
    "Relaxes and moves hand to target location",
    "Moves hand to target location",
    "Hand at target location",
    "Performs gesture",
)
PHASES = ("Transition", "Gesture")
TOF_NO_RESPONSE = -1
