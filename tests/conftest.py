"""Tests run on the CPU with tiny sizes, whatever the machine has.

Fixtures shared by several test modules live here; plain functions and the fake-study builders
are in ``helpers/`` (``from helpers.fake_study import ...``)."""

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported anywhere

from pathlib import Path  # noqa: E402

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


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through chromedriver, one per test module (skips where it is not installed)."""
    from helpers.page import CHROMEDRIVER, CHROMIUM

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"headless Chromium not installed (looked for {CHROMIUM} and {CHROMEDRIVER})")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1300,1000",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


@pytest.fixture
def all_arms(monkeypatch):
    """Every arm's search study and a confirmation of all of them (fixed: 0.70, the others around
    it), read and analysed."""
    from helpers.fake_study import ALL_ARMS, BASE, MORE_BASE, confirmed

    for arm, base in MORE_BASE.items():
        monkeypatch.setitem(BASE, arm, base)
    return confirmed("all", arms=ALL_ARMS)


# What .ci/run creates; used when CMI_TEST_POSTGRES_URL is unset but a local server is up.
LOCAL_POSTGRES = "postgresql://cmi:cmi-test-pw@127.0.0.1:5432/cmi_test"


@pytest.fixture
def postgres_url():
    """CMI_TEST_POSTGRES_URL (.ci/run sets it), else the local server .ci/run would set up.

    Skips only when neither is reachable and CI is unset; under CI a missing server fails.
    """
    from cmi_model.errors import InputError
    from study.workers.storage import close, open_storage

    configured = os.environ.get("CMI_TEST_POSTGRES_URL")
    url = configured or LOCAL_POSTGRES
    try:
        close(open_storage(url))  # how the driver connects (driver choice included)
    except InputError as e:  # its message masks the password
        if configured or os.environ.get("CI"):
            pytest.fail(f"PostgreSQL for the multi-worker tests: {e}")
        pytest.skip(f"no PostgreSQL server: {e}")
    return url
