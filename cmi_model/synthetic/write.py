"""Write the four Kaggle CSVs: `generate` plans, simulates chunk by chunk and streams rows out.

Values are written the way the real files have them: floats with up to 4 (sensors) or 6
(quaternion) decimals, ToF as integers, and a missing value as an empty field.
"""

from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cmi_model.atomic import write_atomically
from cmi_model.errors import InputError
from cmi_model.labels import BINARY_CLASSES, GESTURES, is_target
from cmi_model.schema import (
    ACC_COLUMNS,
    BEHAVIORS,
    DEMOGRAPHICS_COLUMNS,
    ORIENTATIONS,
    PHASES,
    ROT_COLUMNS,
    TEST_COLUMNS,
    THM_COLUMNS,
    TOF_COLUMNS,
    TRAIN_COLUMNS,
)
from cmi_model.synthetic.plan import FULL_SIZE_SUBJECTS, Plan, Subjects, build_plans
from cmi_model.synthetic.simulate import simulate

CHUNK = 256  # sequences simulated together; fixed, because chunk noise streams depend on it


def _schema(columns: list[str]) -> pa.Schema:
    fields = []
    for col in columns:
        if col == "sequence_counter":
            typ = pa.int64()
        elif col.startswith("tof_"):
            typ = pa.int16()
        elif col in ACC_COLUMNS or col in ROT_COLUMNS or col in THM_COLUMNS:
            typ = pa.float64()
        else:
            typ = pa.string()
        fields.append(pa.field(col, typ))
    return pa.schema(fields)


def _float_array(x: np.ndarray) -> pa.Array:
    return pa.array(x, type=pa.float64(), from_pandas=True)  # NaN -> null -> empty field


def _table(plan: Plan, subjects: Subjects, idx: np.ndarray, sim: dict, columns: list[str]) -> pa.Table:
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
    path: Path, plan: Plan, subjects: Subjects, columns: list[str], seed: int, split: int
) -> int:
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as f:
        f.write((",".join(columns) + "\n").encode())
        with pacsv.CSVWriter(f, _schema(columns), write_options=options) as writer:
            for chunk, lo in enumerate(range(0, len(plan), CHUNK)):
                idx = np.arange(lo, min(lo + CHUNK, len(plan)))
                rng = np.random.default_rng([seed, split, chunk])
                writer.write_table(_table(plan, subjects, idx, simulate(plan, idx, rng), columns))
    return int(plan.length.sum())


def _write_demographics(path: Path, subjects: Subjects) -> None:
    order = np.argsort(subjects.ids)
    arrays = [pa.array([f"SUBJ_{i:06d}" for i in subjects.ids[order]])]
    arrays += [pa.array(subjects.demo[c][order]) for c in DEMOGRAPHICS_COLUMNS[1:]]
    table = pa.Table.from_arrays(arrays, names=DEMOGRAPHICS_COLUMNS)
    with open(path, "wb") as f:
        f.write((",".join(DEMOGRAPHICS_COLUMNS) + "\n").encode())
        pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style="none"))


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
        raise InputError(f"--data-seed must be non-negative, got {seed}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (train_subjects, train_plan), (test_subjects, test_plan) = build_plans(n_subjects, seed)
    summary: dict = {"out_dir": str(out), "seed": seed}
    for split, (name, plan, subjects, columns) in enumerate(
        (
            ("train", train_plan, train_subjects, TRAIN_COLUMNS),
            ("test", test_plan, test_subjects, TEST_COLUMNS),
        )
    ):
        path, demo_path = out / f"{name}.csv", out / f"{name}_demographics.csv"
        n_rows = write_atomically(
            path,
            partial(_write_sensor_csv, plan=plan, subjects=subjects, columns=columns, seed=seed, split=split),
        )
        write_atomically(demo_path, partial(_write_demographics, subjects=subjects))
        summary[name] = {
            "path": str(path),
            "demographics_path": str(demo_path),
            "n_sequences": len(plan),
            "n_rows": n_rows,
            "n_subjects": len(subjects.ids),
        }
    return summary
