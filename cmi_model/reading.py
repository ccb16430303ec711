"""Reading the competition's CSV files with pyarrow, where anything malformed becomes one line.

A header longer than HEADER_LIMIT, missing or misspelt columns, rows with the wrong number of fields,
values that do not parse and bytes that are not UTF-8 are `InputError`s naming the file, the column,
the line and the sequence. What the values mean is checked in `cmi_model.validation`.
"""

from __future__ import annotations

import csv
import difflib
import re
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cmi_model.errors import InputError

HEADER_LIMIT = 1 << 20  # bytes: the real header is ~3.5 KB; a first line longer than 1 MB is no CSV header
BLOCK_SIZE = 1 << 20  # pyarrow's default block: a row longer than this is reported as binary junk


def unreadable(path: Path, e: OSError) -> InputError:
    if isinstance(e, FileNotFoundError):
        return InputError(f"{path}: file not found")
    if isinstance(e, IsADirectoryError) or path.is_dir():
        return InputError(f"{path}: is a directory, not a CSV file")
    return InputError(f"{path}: cannot read the file: {e.strerror or e}")


def not_a_regular_file(path: Path) -> str | None:
    """What `path` is when it exists but is no regular file (a FIFO, a device, a socket: opening or
    reading one can block forever or never end, e.g. /dev/zero), else None. Symlinks are followed."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # missing or unreadable: the open that follows says which
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kinds = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device"}
    kinds |= {stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    return next((kind for test, kind in kinds.items() if test(mode)), "not a regular file")


def check_regular_file(path: Path, what: str = "") -> None:
    """An InputError for a FIFO, device or socket where a file is expected."""
    kind = not_a_regular_file(path)
    if kind is not None:
        raise InputError(f"{what}{path}: is {kind}, not a regular file")


def read_header(path: Path) -> list[str]:
    """The column names on line 1, reading at most HEADER_LIMIT bytes whatever the file holds."""
    check_regular_file(path)
    try:
        with open(path, "rb") as f:
            head = f.readline(HEADER_LIMIT + 1)
    except OSError as e:
        raise unreadable(path, e) from None
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


def shorten(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def read_csv(path: Path, required: list[str], float_columns: list[str]) -> pa.Table:
    """Read a CSV with pyarrow, float32 for the sensor columns; errors name file, column and line."""
    header = read_header(path)
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
        raise unreadable(path, e) from None
    except pa.ArrowException as e:
        raise _parse_error(path, header, str(e)) from None
    if table.num_rows == 0:
        raise InputError(f"{path}: the file has a header but no data rows")
    _check_no_line_breaks(path, table)
    return table


def _check_no_line_breaks(path: Path, table: pa.Table) -> None:
    """No text value of the real files holds a line break. One that does (a quoted newline) is an
    error naming its own line: it would also shift every later row off its line number."""
    text = [f.name for f in table.schema if pa.types.is_string(f.type)]
    for name in text:
        hit = pc.fill_null(pc.match_substring_regex(table[name], r"[\r\n]"), False)
        if not pc.any(hit).as_py():
            continue
        row = int(np.flatnonzero(hit.to_numpy(zero_copy_only=False))[0])
        earlier = sum(pc.sum(pc.count_substring(table[c].slice(0, row), "\n")).as_py() or 0 for c in text)
        seq = (
            f", sequence {table['sequence_id'][row]}"
            if "sequence_id" in text and name != "sequence_id"
            else ""
        )
        raise InputError(f"{path}: column {name!r}, line {row + 2 + earlier}{seq}: value holds a line break")


def _parse_error(path: Path, header: list[str], message: str) -> InputError:
    """pyarrow's error, said with file, column, line and sequence (found again: only on errors)."""
    m = _ARROW_CONVERSION_ERROR.search(message)
    if m and int(m.group(1)) < len(header):
        col, kind, value = header[int(m.group(1))], m.group(2), m.group(3)
        where = _bad_value_where(path, header, col, lambda values: values == value)
        return InputError(f"{path}: column {col!r}, {where}: value {shorten(value)} is not a valid {kind}")
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
        at = f"line {line}{seq}" if line else f"a row starting {shorten(row)}"
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
        hits = np.flatnonzero(is_bad(column_values(table, column)))
    except (OSError, pa.ArrowException):
        return "line unknown"
    if not len(hits):
        return "line unknown"
    row = int(hits[0])
    name = column_values(table, id_col)[row]
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


def column_values(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)
