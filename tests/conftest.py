"""Tests run on the CPU with tiny sizes, whatever the machine has."""

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported anywhere

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Each test session gets its own preprocessing cache, never the user's.

    Session-scoped so that module-scoped fixtures and worker subprocesses (which inherit
    os.environ) use it too.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CMI_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        yield
