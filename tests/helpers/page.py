"""The report page in the tests: its headline section as rendered, and what headless Chromium
shows of it (the ``browser`` fixture that drives Chromium is in conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from study.report.analyse import Report
from study.report.page import render_html

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def headline_html(report: Report) -> str:
    """The page's headline section, rendered."""
    text, _ = render_html(report)
    return text[text.index('<section id="1-headline">') : text.index('<section id="2-')]


def open_report(driver, path: Path) -> None:
    """Load the page and wait until plotly drew its first figure (or it has none)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop messages of earlier pages
    driver.get(path.resolve().as_uri())
    n = int(driver.find_element("css selector", "body").get_attribute("data-figures"))
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script(
            "return document.querySelectorAll('.js-plotly-plot .main-svg').length > 0 || arguments[0] == 0", n
        )
    )


def rendered(driver) -> int:
    """How many of the page's figures plotly drew."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.js-plotly-plot')].filter(e => e.querySelector('svg.main-svg')).length"
    )
