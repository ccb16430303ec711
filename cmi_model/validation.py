"""What the values of a read sensor file may be: physical bounds, unit quaternions, ToF codes,
labels from the hierarchy, rows grouped by sequence, subjects with demographics.

Every check is a reduction over the whole row matrix (no per-row Python) and fails with one
`InputError` naming file, column, line and sequence of the first bad row in the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cmi_model.errors import InputError
from cmi_model.labels import EIGHTEEN_TO_BINARY, GESTURE_INDEX, GESTURES
from cmi_model.reading import column_values, read_csv, shorten
from cmi_model.schema import (
    DEMOGRAPHICS_COLUMNS,
    SEQUENCE_TYPES,
    TOF_COLUMNS,
    TOF_NO_RESPONSE,
)

# Physical bounds of the sensor values (inclusive). An empty cell (NaN) is "missing", which the
# real data has for rotation, thermopiles and ToF and never for the accelerometer. A value outside
# is an error naming file, column, line and sequence: a float32 overflow such as 3e38 would make
# every trial diverge, and the checks are reductions over the matrices, with no copies.
ACC_LIMIT = 1000.0  # |acc_*| in m/s²: ~100 g (9.81 at rest; wrist IMUs saturate near ±16 g = 157)
ROT_NORM_TOLERANCE = 0.1  # quaternions are unit norm: |q| within 1 ± 0.1; all zeros is an error
THM_RANGE = (-50.0, 150.0)  # °C
TOF_MAX = 254.0  # ToF values are uncalibrated 0..254, or TOF_NO_RESPONSE (-1)
TOF_FAR = 255.0  # "no response" (-1) means nothing in range: treat it as farther than any reading


class Where:
    """'line N, sequence S' of a row of the grouped matrices (`order[row]` is its row in the file)."""

    def __init__(self, seq_sorted: np.ndarray, order: np.ndarray | None):
        self.seq, self.order = seq_sorted, order

    def file_row(self, row: int) -> int:
        return row if self.order is None else int(self.order[row])

    def __call__(self, row: int) -> str:
        return f"line {self.file_row(row) + 2}, sequence {self.seq[row]}"  # line 1 is the header

    def first(self, bad_rows: np.ndarray) -> int:
        """The bad row that comes first in the file."""
        rows = np.flatnonzero(bad_rows)
        return int(rows[0] if self.order is None else rows[np.argmin(self.order[rows])])


def _first_bad(path: Path, what: str, column: str, bad_rows: np.ndarray, where: Where):
    raise InputError(f"{path}: column {column!r}, {where(where.first(bad_rows))}: {what}")


def validate_and_order(path: Path, table: pa.Table, labeled: bool) -> tuple[np.ndarray, np.ndarray]:
    """Check per-sequence consistency; return (row order, offsets) grouping rows by sequence."""
    for col in ("sequence_id", "subject", "sequence_counter"):
        if table.column(col).null_count:
            row = int(np.flatnonzero(table.column(col).is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{path}: column {col!r}, line {row + 2}: empty value")
    seq = column_values(table, "sequence_id")
    counter = column_values(table, "sequence_counter")
    # Group rows by sequence in order of first appearance, keeping file order within each.
    codes, uniques = _factorize(seq)
    order = np.argsort(codes, kind="stable")
    codes_sorted = codes[order]
    lengths = np.bincount(codes_sorted, minlength=len(uniques))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    starts = offsets[:-1]
    where = Where(uniques[codes_sorted], order)
    empty = uniques == ""
    if empty.any():
        row = int(starts[np.flatnonzero(empty)[0]])
        raise InputError(f"{path}: column 'sequence_id', line {where.file_row(row) + 2}: empty value")
    expected = np.arange(len(order)) - np.repeat(starts, lengths)
    bad = counter[order] != expected
    if bad.any():
        _first_bad(path, "sequence_counter is not 0..n-1 in order", "sequence_counter", bad, where)
    constant = ["subject"] + (["gesture", "sequence_type"] if labeled else [])
    for col in constant:
        values = column_values(table, col)[order]
        first = values[starts]
        bad = values != np.repeat(first, lengths)
        if bad.any():
            _first_bad(path, "value changes within the sequence", col, bad, where)
        if col == "subject" and (first == "").any():
            raise InputError(
                f"{path}: column 'subject', {where(starts[np.flatnonzero(first == '')[0]])}: empty value"
            )
    if labeled:
        gestures = column_values(table, "gesture")[order][starts]
        known = np.isin(gestures, np.array(GESTURES, dtype=object))
        if not known.all():
            i = int(np.flatnonzero(~known)[0])
            raise InputError(
                f"{path}: column 'gesture', {where(starts[i])}: {shorten(gestures[i])} "
                "is not one of the 18 gestures"
            )
        types = column_values(table, "sequence_type")[order][starts]
        implied = np.array(SEQUENCE_TYPES, dtype=object)[EIGHTEEN_TO_BINARY[gesture_index(gestures)]]
        bad = types != implied
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{path}: column 'sequence_type', {where(starts[i])}: {shorten(types[i])} but gesture "
                f"{str(gestures[i])!r} is {str(implied[i])!r}"
            )
    return order, offsets


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes in order of first appearance (pandas-free, via pyarrow's dictionary encoding)."""
    enc = pc.dictionary_encode(pa.array(values))
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), np.asarray(
        enc.dictionary.to_pylist(), dtype=object
    )


def gesture_index(gestures: np.ndarray) -> np.ndarray:
    return np.array([GESTURE_INDEX[g] for g in gestures], dtype=np.int64)


def _first_outside(matrix: np.ndarray, low: float, high: float, where: Where) -> tuple[int, int] | None:
    """(row, column) of the first value in file order outside [low, high], NaN allowed; None if all
    are inside. Two reductions that skip NaN and copy nothing; a mask only when they fail."""
    if not len(matrix) or not (
        np.fmin.reduce(matrix, axis=None) < low or np.fmax.reduce(matrix, axis=None) > high
    ):
        return None  # (fmin/fmax of an all-NaN matrix are NaN: nothing out of range)
    bad = (matrix < low) | (matrix > high)
    row = where.first(bad.any(axis=1))
    return row, int(np.flatnonzero(bad[row])[0])


def check_range(
    path: Path, matrix: np.ndarray, columns: list[str], low: float, high: float, unit: str, where: Where
) -> None:
    found = _first_outside(matrix, low, high, where)
    if found is not None:
        row, col = found
        value, bounds = float(matrix[row, col]), f"{low:g}..{high:g}{unit}"
        what = (
            f"value is infinite (physical range {bounds})"
            if np.isinf(value)
            else f"value {value:g} is outside the physical range {bounds}"
        )
        raise InputError(f"{path}: column {columns[col]!r}, {where(row)}: {what}")


def check_rotation(path: Path, rot: np.ndarray, where: Where) -> None:
    """Quaternions are unit norm. A row with any NaN is missing rotation (as in the real data); an
    all-zero quaternion is not a rotation and not the file's way of saying "missing": an error."""
    norm = np.sqrt(sum(rot[:, j].astype(np.float64) ** 2 for j in range(4)))
    bad = np.abs(norm - 1.0) > ROT_NORM_TOLERANCE  # NaN compares False
    if not bad.any():
        return
    row = where.first(bad)
    columns = "columns rot_w/rot_x/rot_y/rot_z"
    if norm[row] == 0:
        raise InputError(
            f"{path}: {columns}, {where(row)}: the quaternion is all zeros (not a rotation; "
            "a missing rotation is written as empty cells)"
        )
    raise InputError(
        f"{path}: {columns}, {where(row)}: quaternion norm {norm[row]:.4g} is not 1 "
        f"(unit quaternions, tolerance ±{ROT_NORM_TOLERANCE:g})"
    )


def check_tof(path: Path, tof: np.ndarray, where: Where) -> None:
    """ToF values are TOF_NO_RESPONSE (-1), 0..TOF_MAX or NaN; sets "no response" to TOF_FAR in place.

    Column by column: each is contiguous in _to_matrix's layout and fits in cache, so the maximum,
    the replacement and the minimum cost less than one pass over the whole matrix each (measured:
    0.28 s against 0.38 s on the full-size file). The maximum is taken before the replacement, the
    minimum after it, when the only valid negative value, -1, is gone."""
    for j in range(tof.shape[1]):
        col = tof[:, j]
        if np.fmax.reduce(col) > TOF_MAX:  # (NaN, the result for an all-NaN column, compares False)
            _tof_error(path, tof, j, False, where)
        col[col == TOF_NO_RESPONSE] = TOF_FAR
        if np.fmin.reduce(col) < 0:
            _tof_error(path, tof, j, True, where)


def _tof_error(path: Path, tof: np.ndarray, first: int, replaced: bool, where: Where):
    """The first bad ToF value in file order; columns before `first` passed (and were replaced)."""
    rest = tof[:, first:]
    ok = np.isnan(rest) | (rest == TOF_NO_RESPONSE) | ((rest >= 0) & (rest <= TOF_MAX))
    if replaced:
        ok[:, 0] |= rest[:, 0] == TOF_FAR
    row = where.first(~ok.all(axis=1))
    col = first + int(np.flatnonzero(~ok[row])[0])
    raise InputError(
        f"{path}: column {TOF_COLUMNS[col]!r}, {where(row)}: value {float(tof[row, col]):g} is neither "
        f"{TOF_NO_RESPONSE} (no response) nor within 0..{TOF_MAX:g}"
    )


def check_demographics(path: Path, subjects: np.ndarray) -> None:
    """One row per subject, covering every subject of the sensor file."""
    table = read_csv(path, DEMOGRAPHICS_COLUMNS, [c for c in DEMOGRAPHICS_COLUMNS if c != "subject"])
    names = column_values(table, "subject")
    for col in DEMOGRAPHICS_COLUMNS[1:]:
        values = column_values(table, col)
        bad = ~np.isfinite(values)  # inf, "nan" or an empty cell: every subject has every value
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "infinite" if np.isinf(values[row]) else "missing or not a number"
            raise InputError(f"{path}: column {col!r}, line {row + 2}, subject {names[row]}: value is {what}")
    empty = names == ""
    if empty.any():
        raise InputError(f"{path}: column 'subject', line {int(np.flatnonzero(empty)[0]) + 2}: empty value")
    codes, uniques = _factorize(names)
    counts = np.bincount(codes, minlength=len(uniques))
    if (counts > 1).any():
        rows = np.flatnonzero(counts[codes] > 1)
        subject = names[rows[0]]
        lines = np.flatnonzero(names == subject) + 2
        differ = [
            c for c in DEMOGRAPHICS_COLUMNS[1:] if len(np.unique(column_values(table, c)[lines - 2])) > 1
        ]
        how = f"; they disagree on {differ[0]!r}" if differ else ""
        raise InputError(
            f"{path}: column 'subject', lines {', '.join(map(str, lines))}: subject {subject} has "
            f"{len(lines)} rows (one per subject){how}"
        )
    known = set(uniques)
    for s in subjects:
        if s not in known:
            raise InputError(f"{path}: subject {str(s)!r} has sensor data but no demographics row")
