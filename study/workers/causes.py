"""The chain of exceptions behind a storage error: what each storage library wrapped."""

from collections.abc import Iterator


def causes(e: BaseException | None, depth: int = 10) -> Iterator[BaseException]:
    """e, then what raised it (its __cause__, else its __context__), at most depth deep: the
    error a library wrapped (RDBStorage wraps SQLAlchemy's, which wraps the driver's)."""
    while e is not None and depth > 0:
        yield e
        e, depth = e.__cause__ or e.__context__, depth - 1
