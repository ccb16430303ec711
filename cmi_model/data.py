"""Read and validate the Kaggle CMI CSVs into `SequenceData`, and cache the result on disk.

The real files and the synthetic ones go through exactly the same code. Rows are read
with pyarrow (multi-threaded, sensors straight to float32); everything after that is
vectorised numpy over the whole row matrix, with sequence boundaries from `offsets`.
The derived IMU features come from `cmi_model.features`; turning the arrays into
training batches is `cmi_model.dataset`'s job.

Missing sensors are data, not errors: NaN stays NaN in the arrays and becomes a
presence mask; after normalisation a missing value is 0 *and* flagged absent. Values
the sensors cannot produce (see ACC_LIMIT and the bounds after it), a malformed header
or row, and anything that is no CSV at all are errors: one line naming file, column,
line and sequence (`InputError`), and the header is read in at most HEADER_LIMIT bytes.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import xxhash

from cmi_model.errors import InputError
from cmi_model.features import imu_features
from cmi_model.labels import EIGHTEEN_TO_BINARY, GESTURE_INDEX, GESTURES
from cmi_model.schema import (
    ACC_COLUMNS,
    DEMOGRAPHICS_COLUMNS,
    N_TOF_SENSORS,
    ROT_COLUMNS,
    SENSOR_COLUMNS,
    SEQUENCE_TYPES,
    TEST_COLUMNS,
    THM_COLUMNS,
    TOF_COLUMNS,
    TOF_NO_RESPONSE,
    TOF_PIXELS,
    TRAIN_COLUMNS,
)

TOF_FAR = 255.0  # "no response" (-1) means nothing in range: treat it as farther than any reading
# Presence flags per row: is the quaternion there, is each thermopile, is each ToF sensor.
PRESENCE = ["rot", *THM_COLUMNS, *[f"tof_{s}" for s in range(1, N_TOF_SENSORS + 1)]]
CACHE_VERSION = 2  # bump when preprocessing or validation changes meaning (2: physical bounds)
USER_CACHE = "user"  # cache_dir default: $CMI_CACHE_DIR, else ~/.cache/cmi-study, read at call time


def default_cache_dir() -> Path:
    return Path(os.environ.get("CMI_CACHE_DIR", Path.home() / ".cache" / "cmi-study"))


ARRAYS = ("imu", "thm", "tof", "present", "offsets", "sequence_id", "subject", "gesture")


@dataclass
class SequenceData:
    """All sequences of one file as flat row matrices plus per-sequence metadata."""

    imu: np.ndarray  # (N_rows, 17) float32: raw acc + quaternion + derived features, NaN = missing
    thm: np.ndarray  # (N_rows, 5) float32, NaN = missing
    tof: np.ndarray  # (N_rows, 320) float32, -1 replaced by TOF_FAR, NaN = missing
    present: np.ndarray  # (N_rows, 11) bool: see PRESENCE
    offsets: np.ndarray  # (S+1,) int64: rows of sequence i are offsets[i]:offsets[i+1]
    sequence_id: np.ndarray  # (S,) str
    subject: np.ndarray  # (S,) str
    gesture: np.ndarray  # (S,) int64 index into labels.GESTURES, -1 for unlabeled (test) data
    meta: dict = field(default_factory=dict)  # source, fingerprint, sizes

    @property
    def n_sequences(self) -> int:
        return len(self.sequence_id)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence_presence(self) -> np.ndarray:
        """(S, 11) bool: did each sensor report at least once in each sequence."""
        return np.logical_or.reduceat(self.present, self.offsets[:-1], axis=0)


# ----------------------------------------------------------------------------- reading

HEADER_LIMIT = 1 << 20  # bytes: the real header is ~3.5 KB; a first line longer than 1 MB is no CSV header
BLOCK_SIZE = 1 << 20  # pyarrow's default block: a row longer than this is reported as binary junk


def _unreadable(path: Path, e: OSError) -> InputError:
    if isinstance(e, FileNotFoundError):
        return InputError(f"{path}: file not found")
    if isinstance(e, IsADirectoryError) or path.is_dir():
        return InputError(f"{path}: is a directory, not a CSV file")
    return InputError(f"{path}: cannot read the file: {e.strerror or e}")


def _header(path: Path) -> list[str]:
    """The column names on line 1, reading at most HEADER_LIMIT bytes whatever the file holds."""
    try:
        with open(path, "rb") as f:
            head = f.readline(HEADER_LIMIT + 1)
    except OSError as e:
        raise _unreadable(path, e) from None
    if not head.strip():
        raise InputError(f"{path}: the file is empty (no header line)")
    nul = " (it holds NUL bytes: binary, not text?)" if b"\0" in head else ""
    if len(head) > HEADER_LIMIT:
        raise InputError(f"{path}: line 1 is not a CSV header: no line end within the first 1 MB{nul}")
    if nul:
        raise InputError(f"{path}: line 1 is not a CSV header{nul}")
    # utf-8-sig: a byte-order mark (Excel's CSV export) is not part of the first name; pyarrow skips it too.
    text = head.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    return next(csv.reader([text]))


def _check_columns(path: Path, header: list[str], required: list[str]) -> None:
    """Each required column exactly once; a name padded with spaces or repeated is an error, not a guess."""
    positions: dict[str, list[int]] = {}
    for j, name in enumerate(header):
        positions.setdefault(name, []).append(j + 1)
    for col in required:
        where = positions.get(col, [])
        if len(where) > 1:
            raise InputError(
                f"{path}: line 1: column {col!r} appears {len(where)} times (columns "
                f"{', '.join(map(str, where))}); it must appear once"
            )
        if where:
            continue
        padded = [(j + 1, h) for j, h in enumerate(header) if h != col and h.strip() == col]
        if padded:
            j, h = padded[0]
            raise InputError(f"{path}: line 1, column {j}: {h!r} has spaces around the name {col!r}")
        close = difflib.get_close_matches(col, [h for h in header if h not in required], n=1)
        hint = f" (found {close[0]!r}: misspelled?)" if close else ""
        raise InputError(f"{path}: missing column {col!r}{hint}")


_ARROW_CONVERSION_ERROR = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+): invalid value '(.*)'", re.S
)
_ARROW_ROW_ERROR = re.compile(r"CSV parse error: Expected (\d+) columns, got (\d+): (.*)", re.S)
_ARROW_COLUMN_ERROR = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?(.*)", re.S)


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def read_csv(path: Path, required: list[str], float_columns: list[str]) -> pa.Table:
    """Read a CSV with pyarrow, float32 for the sensor columns; errors name file, column and line."""
    header = _header(path)
    _check_columns(path, header, required)
    types = {c: pa.float32() for c in float_columns}
    types.update({c: pa.string() for c in required if c not in float_columns and c != "sequence_counter"})
    if "sequence_counter" in required:
        types["sequence_counter"] = pa.int64()
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=required),
        )
    except OSError as e:
        raise _unreadable(path, e) from None
    except pa.ArrowException as e:
        raise _parse_error(path, header, str(e)) from None
    if table.num_rows == 0:
        raise InputError(f"{path}: the file has a header but no data rows")
    return table


def _parse_error(path: Path, header: list[str], message: str) -> InputError:
    """pyarrow's error, said with file, column, line and sequence (found again: only on errors)."""
    m = _ARROW_CONVERSION_ERROR.search(message)
    if m and int(m.group(1)) < len(header):
        col, kind, value = header[int(m.group(1))], m.group(2), m.group(3)
        where = _bad_value_where(path, header, col, lambda values: values == value)
        return InputError(f"{path}: column {col!r}, {where}: value {_short(value)} is not a valid {kind}")
    m = _ARROW_COLUMN_ERROR.search(message)
    if m and int(m.group(1)) < len(header) and "invalid UTF8" in message:
        col = header[int(m.group(1))]
        where = _bad_value_where(path, header, col, _not_utf8, pa.binary())
        return InputError(f"{path}: column {col!r}, {where}: not UTF-8 text (save the file as UTF-8)")
    m = _ARROW_ROW_ERROR.search(message)
    if m:
        expected, got, row = int(m.group(1)), int(m.group(2)), m.group(3)
        truncated = row.endswith(" ...")
        line = _line_starting(path, row.removesuffix(" ...").encode(), whole=not truncated)
        fields = next(csv.reader([row]), [])
        seq = ""
        if "sequence_id" in header and header.index("sequence_id") < min(len(fields), got) - truncated:
            seq = f", sequence {fields[header.index('sequence_id')]}"
        at = f"line {line}{seq}" if line else f"a row starting {_short(row)}"
        return InputError(f"{path}: {at}: {got} fields where the header has {expected}")
    if "straddl" in message:  # a "row" longer than a whole block: no line ends, e.g. NUL bytes
        line = _first_long_line(path, BLOCK_SIZE)
        at = f"line {line}" if line else "a row"
        return InputError(f"{path}: {at} is longer than 1 MB: not a CSV row (binary data?)")
    m = _ARROW_COLUMN_ERROR.search(message)
    if m and int(m.group(1)) < len(header):
        return InputError(f"{path}: column {header[int(m.group(1))]!r}: {m.group(2).splitlines()[0]}")
    return InputError(f"{path}: cannot parse CSV: {message.splitlines()[0] if message else 'unknown error'}")


def _not_utf8(values: np.ndarray) -> np.ndarray:
    def bad(v: bytes) -> bool:
        try:
            v.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False

    return np.array([bad(v) for v in values], dtype=bool)  # an error path: a Python loop is fine


def _bad_value_where(
    path: Path, header: list[str], column: str, is_bad, kind: pa.DataType | None = None
) -> str:
    """Arrow's multi-threaded reader does not always say which row failed: read the column (and the
    sequence or subject naming each row) again as text and find the first row `is_bad` marks."""
    id_col = "sequence_id" if "sequence_id" in header else "subject"
    types = {id_col: pa.binary(), column: kind or pa.string()}  # (`column` may be the id column)
    opts = pacsv.ConvertOptions(include_columns=list(types), column_types=types)
    try:
        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE), convert_options=opts
        )
        hits = np.flatnonzero(is_bad(_column_values(table, column)))
    except (OSError, pa.ArrowException):
        return "line unknown"
    if not len(hits):
        return "line unknown"
    row = int(hits[0])
    name = _column_values(table, id_col)[row]
    name = name.decode("utf-8", errors="replace") if isinstance(name, bytes) else name
    return f"line {row + 2}, {'sequence' if id_col == 'sequence_id' else 'subject'} {name}"  # line 1: header


def _lines(path: Path):
    """(line number, its first 64 KB, its length in bytes) of every line; for error messages only."""
    with open(path, "rb") as f:
        number = 0
        while head := f.readline(1 << 16):
            number, length, piece = number + 1, len(head), head
            while not piece.endswith(b"\n") and (piece := f.readline(1 << 16)):
                length += len(piece)
            yield number, head, length


def _line_starting(path: Path, prefix: bytes, whole: bool) -> int | None:
    """Number of the first data line that starts with `prefix` (whole: that is exactly `prefix`)."""
    for number, head, _ in _lines(path):
        if number > 1 and (head.rstrip(b"\r\n") == prefix if whole else head.startswith(prefix)):
            return number
    return None


def _first_long_line(path: Path, limit: int) -> int | None:
    """Number of the first line longer than `limit` bytes."""
    return next((number for number, _, length in _lines(path) if length > limit), None)


def _column_values(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


# ----------------------------------------------------------------------------- validation

# Physical bounds of the sensor values (inclusive). An empty cell (NaN) is "missing", which the
# real data has for rotation, thermopiles and ToF and never for the accelerometer. A value outside
# is an error naming file, column, line and sequence: a float32 overflow such as 3e38 would make
# every trial diverge, and the checks are reductions over the matrices, with no copies.
ACC_LIMIT = 1000.0  # |acc_*| in m/s²: ~100 g (9.81 at rest; wrist IMUs saturate near ±16 g = 157)
ROT_NORM_TOLERANCE = 0.1  # quaternions are unit norm: |q| within 1 ± 0.1; all zeros is an error
THM_RANGE = (-50.0, 150.0)  # °C
TOF_MAX = 254.0  # ToF values are uncalibrated 0..254, or TOF_NO_RESPONSE (-1)


class _Where:
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


def _first_bad(path: Path, what: str, column: str, bad_rows: np.ndarray, where: _Where):
    raise InputError(f"{path}: column {column!r}, {where(where.first(bad_rows))}: {what}")


def _validate_and_order(path: Path, table: pa.Table, labeled: bool) -> tuple[np.ndarray, np.ndarray]:
    """Check per-sequence consistency; return (row order, offsets) grouping rows by sequence."""
    for col in ("sequence_id", "subject", "sequence_counter"):
        if table.column(col).null_count:
            row = int(np.flatnonzero(table.column(col).is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{path}: column {col!r}, line {row + 2}: empty value")
    seq = _column_values(table, "sequence_id")
    counter = _column_values(table, "sequence_counter")
    # Group rows by sequence in order of first appearance, keeping file order within each.
    codes, uniques = _factorize(seq)
    order = np.argsort(codes, kind="stable")
    codes_sorted = codes[order]
    lengths = np.bincount(codes_sorted, minlength=len(uniques))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    starts = offsets[:-1]
    where = _Where(uniques[codes_sorted], order)
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
        values = _column_values(table, col)[order]
        first = values[starts]
        bad = values != np.repeat(first, lengths)
        if bad.any():
            _first_bad(path, "value changes within the sequence", col, bad, where)
        if col == "subject" and (first == "").any():
            raise InputError(
                f"{path}: column 'subject', {where(starts[np.flatnonzero(first == '')[0]])}: empty value"
            )
    if labeled:
        gestures = _column_values(table, "gesture")[order][starts]
        known = np.isin(gestures, np.array(GESTURES, dtype=object))
        if not known.all():
            i = int(np.flatnonzero(~known)[0])
            raise InputError(
                f"{path}: column 'gesture', {where(starts[i])}: {_short(gestures[i])} "
                "is not one of the 18 gestures"
            )
        types = _column_values(table, "sequence_type")[order][starts]
        implied = np.array(SEQUENCE_TYPES, dtype=object)[EIGHTEEN_TO_BINARY[_gesture_index(gestures)]]
        bad = types != implied
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{path}: column 'sequence_type', {where(starts[i])}: {_short(types[i])} but gesture "
                f"{gestures[i]!r} is {implied[i]!r}"
            )
    return order, offsets


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes in order of first appearance (pandas-free, via pyarrow's dictionary encoding)."""
    enc = pc.dictionary_encode(pa.array(values))
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), np.asarray(
        enc.dictionary.to_pylist(), dtype=object
    )


def _gesture_index(gestures: np.ndarray) -> np.ndarray:
    return np.array([GESTURE_INDEX[g] for g in gestures], dtype=np.int64)


def _first_outside(matrix: np.ndarray, low: float, high: float, where: _Where) -> tuple[int, int] | None:
    """(row, column) of the first value in file order outside [low, high], NaN allowed; None if all
    are inside. Two reductions that skip NaN and copy nothing; a mask only when they fail."""
    if not len(matrix) or not (
        np.fmin.reduce(matrix, axis=None) < low or np.fmax.reduce(matrix, axis=None) > high
    ):
        return None  # (fmin/fmax of an all-NaN matrix are NaN: nothing out of range)
    bad = (matrix < low) | (matrix > high)
    row = where.first(bad.any(axis=1))
    return row, int(np.flatnonzero(bad[row])[0])


def _check_range(
    path: Path, matrix: np.ndarray, columns: list[str], low: float, high: float, unit: str, where: _Where
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


def _check_rotation(path: Path, rot: np.ndarray, where: _Where) -> None:
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


def _check_tof(path: Path, tof: np.ndarray, where: _Where) -> None:
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


def _tof_error(path: Path, tof: np.ndarray, first: int, replaced: bool, where: _Where):
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
    names = _column_values(table, "subject")
    for col in DEMOGRAPHICS_COLUMNS[1:]:
        inf = np.isinf(_column_values(table, col))
        if inf.any():
            row = int(np.flatnonzero(inf)[0])
            raise InputError(
                f"{path}: column {col!r}, line {row + 2}, subject {names[row]}: value is infinite"
            )
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
            c for c in DEMOGRAPHICS_COLUMNS[1:] if len(np.unique(_column_values(table, c)[lines - 2])) > 1
        ]
        how = f"; they disagree on {differ[0]!r}" if differ else ""
        raise InputError(
            f"{path}: column 'subject', lines {', '.join(map(str, lines))}: subject {subject} has "
            f"{len(lines)} rows (one per subject){how}"
        )
    known = set(uniques)
    for s in subjects:
        if s not in known:
            raise InputError(f"{path}: subject {s!r} has sensor data but no demographics row")


# ----------------------------------------------------------------------------- preprocessing


def _to_matrix(table: pa.Table, columns: list[str], order: np.ndarray | None) -> np.ndarray:
    """(N, C) float32 in column-major order: each column lands in one contiguous block,
    which is 5x faster than scattering it across rows (measured on the full-size file)."""
    out = np.empty((len(columns), table.num_rows), dtype=np.float32)
    for j, c in enumerate(columns):
        col = table.column(c).to_numpy(zero_copy_only=False)
        out[j] = col if order is None else col[order]
    return out.T


def build(path: Path, demographics: Path | None = None) -> SequenceData:
    """Read, validate and preprocess one sensor CSV (train or test schema)."""
    path = Path(path)
    labeled = "gesture" in _header(path)
    required = TRAIN_COLUMNS if labeled else TEST_COLUMNS
    table = read_csv(path, [c for c in required if c != "row_id"], SENSOR_COLUMNS)
    order, offsets = _validate_and_order(path, table, labeled)
    if np.array_equal(order, np.arange(len(order))):
        order = None  # the usual case: rows already grouped, skip a copy
    starts = offsets[:-1]
    seq_sorted = _in_order(_column_values(table, "sequence_id"), order)
    sequence_id = seq_sorted[starts].astype(str)
    subject = _in_order(_column_values(table, "subject"), order)[starts].astype(str)
    gesture = np.full(len(starts), -1, dtype=np.int64)
    if labeled:
        gesture = _gesture_index(_in_order(_column_values(table, "gesture"), order)[starts])
    if demographics is not None:
        check_demographics(Path(demographics), np.unique(subject))
    where = _Where(seq_sorted, order)

    raw_imu = _to_matrix(table, ACC_COLUMNS + ROT_COLUMNS, order)
    missing = np.isnan(raw_imu[:, :3])
    if missing.any():
        row = where.first(missing.any(axis=1))
        col = ACC_COLUMNS[int(np.flatnonzero(missing[row])[0])]
        raise InputError(f"{path}: column {col!r}, {where(row)}: accelerometer value missing")
    _check_range(path, raw_imu[:, :3], ACC_COLUMNS, -ACC_LIMIT, ACC_LIMIT, " m/s²", where)
    _check_rotation(path, raw_imu[:, 3:], where)
    thm = _to_matrix(table, THM_COLUMNS, order)
    _check_range(path, thm, THM_COLUMNS, *THM_RANGE, " °C", where)
    tof = _to_matrix(table, TOF_COLUMNS, order)
    del table  # it holds a second copy of every sensor column: free it before the features are built
    _check_tof(path, tof, where)  # and sets "no response" to TOF_FAR
    imu, present = _preprocess(raw_imu, thm, tof, starts)
    meta = {
        "source": str(path),
        "labeled": labeled,
        "n_rows": int(len(imu)),
        "n_sequences": int(len(starts)),
        "n_subjects": int(len(np.unique(subject))),
        "max_length": int(np.diff(offsets).max()),
    }
    return SequenceData(imu, thm, tof, present, offsets, sequence_id, subject, gesture, meta)


def _in_order(values: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    return values if order is None else values[order]


def _preprocess(
    raw_imu: np.ndarray, thm: np.ndarray, tof: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(IMU features, presence flags); `tof` has "no response" set to TOF_FAR already."""
    first_row = np.zeros(len(raw_imu), dtype=bool)
    first_row[starts] = True
    imu = imu_features(raw_imu[:, :3], raw_imu[:, 3:], first_row)
    # A sensor is present in a row when any of its 64 pixels is. Reduced over the (320, N) view,
    # which is contiguous for _to_matrix's column-major matrices: no reshaping copy.
    tof_present = ~np.isnan(tof.T.reshape(N_TOF_SENSORS, TOF_PIXELS, len(tof))).all(axis=1).T
    present = np.concatenate(
        [~np.isnan(raw_imu[:, 3:]).any(axis=1, keepdims=True), ~np.isnan(thm), tof_present], 1
    )
    return imu, present


# ----------------------------------------------------------------------------- load + cache


def fingerprint(path: Path) -> str:
    """Content hash of a file (xxh3-128, fast enough to run on every load)."""
    h = xxhash.xxh3_128()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                h.update(chunk)
    except OSError as e:
        raise _unreadable(Path(path), e) from None
    return h.hexdigest()


def load(path: str | Path, demographics: str | Path | None = None, cache_dir: Path | str | None = USER_CACHE):
    """Load a CSV through the on-disk cache (keyed by file content and CACHE_VERSION)."""
    path = Path(path)
    demographics = None if demographics is None else Path(demographics)
    for file in (path, demographics):
        if file is not None:
            _header(file)  # reads at most 1 MB: missing, unreadable and binary files fail here, fast
    fp = fingerprint(path)
    if demographics is not None:
        fp = xxhash.xxh3_128_hexdigest((fp + fingerprint(demographics)).encode())
    key = f"v{CACHE_VERSION}-{fp}"
    if cache_dir == USER_CACHE:
        cache_dir = default_cache_dir()
    if cache_dir is not None:
        cached = _read_cache(Path(cache_dir) / key)
        if cached is not None:
            cached.meta["source"] = str(path)
            return cached
    data = build(path, demographics)
    data.meta["fingerprint"] = fp
    if cache_dir is not None:
        _write_cache(Path(cache_dir) / key, data)
    return data


def _read_cache(folder: Path) -> SequenceData | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
    except (OSError, ValueError):
        return None  # absent or damaged: rebuild
    for name in ("offsets", "sequence_id", "subject", "gesture"):
        arrays[name] = np.asarray(arrays[name])
    return SequenceData(**arrays, meta=meta)


def _write_cache(folder: Path, data: SequenceData) -> None:
    """Write to a temp folder and rename, so a crash never leaves a half-written cache."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(data, name))
        (tmp / "meta.json").write_text(json.dumps(data.meta))
        os.replace(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # e.g. another worker wrote it first


def load_dir(data_dir: str | Path, cache_dir: Path | str | None = USER_CACHE) -> SequenceData:
    """train.csv + train_demographics.csv of a Kaggle-style folder."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: data directory not found")
    return load(data_dir / "train.csv", data_dir / "train_demographics.csv", cache_dir)


def describe(data: SequenceData) -> dict:
    """The summary `cmi-study inspect` prints and the study stores."""
    lengths = data.lengths
    seq_present = data.sequence_presence()
    counts = {}
    if data.meta.get("labeled"):
        idx, n = np.unique(data.gesture, return_counts=True)
        counts = {GESTURES[i]: int(c) for i, c in zip(idx, n, strict=True)}
    return {
        "source": data.meta.get("source"),
        "fingerprint": data.meta.get("fingerprint"),
        "n_rows": int(data.offsets[-1]),
        "n_sequences": data.n_sequences,
        "n_subjects": int(len(np.unique(data.subject))),
        "length": {q: int(np.percentile(lengths, p)) for q, p in [("min", 0), ("median", 50), ("max", 100)]}
        | {"mean": round(float(lengths.mean()), 1)},
        "imu_only_share": round(float((~seq_present[:, 1:].any(axis=1)).mean()), 4),
        "nan_rotation_share": round(float((~seq_present[:, 0]).mean()), 4),
        "gesture_counts": counts,
    }
