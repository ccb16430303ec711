"""Files written beside their target and renamed over it: an interrupted write (Ctrl-C, a kill, a
full disk) leaves the old file or none, never half a new one; and the temporary file is always a
new one, so nothing already at a name — a file, or a link planted there to point elsewhere — is
ever opened, let alone written through."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
# O_EXCL: fail if the name exists (a link included: it is not followed); O_NOFOLLOW where it exists.
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
TRIES = 16  # random names to try: a clash means someone keeps planting names, give up then


def temporary_name(path: Path) -> str:
    """``.NAME.<8 hex>.partial`` beside ``path``: hidden, and telling what it was to become."""
    return f".{path.name}.{secrets.token_hex(4)}.partial"


def write_atomically(path: str | Path, write: Callable[[Path], T]) -> T:
    """write(tmp) into a newly created file beside ``path``, then rename it over ``path``; on any
    failure the temporary file is removed and ``path`` is untouched. Returns what write returned.
    The new file gets the mode the umask gives (as open() would), not mkstemp's 0600."""
    path = Path(path)
    for _ in range(TRIES):
        tmp = path.with_name(temporary_name(path))
        try:
            os.close(os.open(tmp, _NEW, 0o666))
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"{path.parent}: could not create a new temporary file in {TRIES} tries")
    try:
        result = write(tmp)
        os.replace(tmp, path)
        return result
    except OSError as e:
        if e.filename is None:  # a failed write (a full disk, a file-size limit) names no file
            e.filename = str(path)
        raise
    finally:
        tmp.unlink(missing_ok=True)
