"""Helpers shared by the test modules: plain functions and fake-study builders (fixtures live in
conftest.py). Submodules: :mod:`helpers.fake_study` (tiny studies in the storage format),
:mod:`helpers.page` (the rendered page and the browser), :mod:`helpers.dashboard` (optuna-dashboard's
own WSGI app, as its users see a storage)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def race(fn: Callable[[], object], n: int = 6) -> list[str]:
    """Run fn in n threads released together (as workers started at once would); return the
    errors they raised, as reprs: an assert inside a thread would go unnoticed."""
    barrier, errors = threading.Barrier(n), []

    def run() -> None:
        barrier.wait()
        try:
            fn()
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
