"""Embedded synthetic data set: the four Kaggle CMI files, same schema, made-up people.

The project must run its demo and tests without the real competition files, so this
package writes ``train.csv``, ``train_demographics.csv``, ``test.csv`` and
``test_demographics.csv`` with exactly the real columns, value formats and missing-data
patterns. The column names come from ``cmi_model.schema``, the single definition the
loader uses too.

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

The noise levels in ``plan`` and ``simulate`` set the difficulty: under subject-grouped CV a
gradient-boosted classifier on per-sequence summary features scores clearly higher with all
sensors than with the IMU alone, and both well below 1.0. Generation is vectorised over all rows of a chunk of sequences; a chunk's
noise comes from its own seeded stream, so the output bytes depend only on the arguments.

The modules, in the order the data flows: ``motions`` (what each gesture looks like),
``plan`` (subjects and the sequences they perform), ``simulate`` (sensor rows) and
``write`` (the CSV files, ``generate``).
"""

from cmi_model.features import gravity_in_device
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
from cmi_model.synthetic.plan import FULL_SIZE_SUBJECTS, PAIRS, build_plans, n_test_subjects
from cmi_model.synthetic.write import generate

# The schema names and gravity_in_device are re-exported: scripts read them from here too.
__all__ = [
    "BEHAVIORS",
    "DEMOGRAPHICS_COLUMNS",
    "FULL_SIZE_SUBJECTS",
    "ORIENTATIONS",
    "PAIRS",
    "SENSOR_COLUMNS",
    "TEST_COLUMNS",
    "THM_COLUMNS",
    "TOF_COLUMNS",
    "TRAIN_COLUMNS",
    "build_plans",
    "generate",
    "gravity_in_device",
    "n_test_subjects",
]
