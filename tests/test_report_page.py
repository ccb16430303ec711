"""Report, the page: the HTML written by write_report (static checks: plotly.js once, sections,
escaping, the every-arm table, what it says when data is missing), the optuna-dashboard note read
from the same analysis, and the page in headless Chromium."""

from __future__ import annotations

import dataclasses
import re
import sys

import optuna
import pytest
from helpers import sqlite_url
from helpers.fake_study import (
    ALL_ARMS,
    EVIL,
    HOLDOUT,
    PASSWORD,
    add_arm_study,
    add_confirm_study,
    add_evil_strings,
    confirmed,
    full_storage,
    noisy_scores,
    report_of,
)
from helpers.page import headline_html, open_report, rendered
from markupsafe import escape
from plotly.offline import get_plotlyjs

from cmi_model.weighting import SCHEMES
from study import report
from study.report import analyse, dashboard, page, sentences
from study.report.page import SECTION_TITLES, SECTIONS, render_html, section_titles
from study.report.style import p_value

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ----------------------------------------------------------------------------- the headline


def test_learned_arm_names_are_escaped_in_the_headline(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    add_confirm_study(storage, "xss", arms=("fixed", EVIL), scores=noisy_scores(0.01, 0.005))
    rep = report_of(storage, "xss")
    assert [(c.a, c.b) for c in rep.comparisons] == [("fixed", EVIL)]
    text, _ = render_html(rep)
    assert EVIL not in text and "&lt;script&gt;window.__pwned=1&lt;/script&gt; − fixed = " in text
    assert EVIL not in dashboard.dashboard_note(rep)


def test_every_arm_against_fixed_in_one_sorted_table(all_arms):
    rep = all_arms
    assert [(c.a, c.b) for c in rep.comparisons] == [("fixed", b) for b in ALL_ARMS[1:]]
    assert all(c.n_adjusted == 7 and c.p_adjusted is not None for c in rep.comparisons)
    html = headline_html(rep)
    table = html[html.index('<table class="summary">') : html.index("</table>", html.index('"summary"'))]
    shown = re.findall(r"■</span> ([a-z_]+)</td>", table)
    by_diff = sorted(rep.comparisons, key=lambda c: -c.comparison.mean_diff)
    assert shown == [c.b for c in by_diff]  # best difference first
    for c in rep.comparisons:
        assert f"{c.comparison.mean_diff:+.4f}" in table
        assert p_value(c.p_adjusted).replace("<", "&lt;") in table
    assert table.count('class="reference"') == 1  # equal: what no tuning gives
    for arm in ALL_ARMS:  # the arms table cites each scheme
        assert escape(f"{SCHEMES[arm].label} ({SCHEMES[arm].paper})") in html, arm


def test_two_arms_have_no_every_arm_table_and_no_forest():
    from study.report.comparison_figures import forest_info

    rep = confirmed("two")
    text, figs = render_html(rep)
    assert 'class="summary"' not in text and "Every arm at a glance" not in text
    assert "forest" not in [k for k, _ in figs]
    assert forest_info(list(rep.comparisons)) is not None  # the record exists; the page leaves it out


# ----------------------------------------------------------------------------- one analysis for the page and the note


def test_the_page_and_the_note_read_one_frozen_report(tmp_path, monkeypatch):
    """write_report analyses once; the page and the dashboard note state the same verdicts."""
    rep = confirmed("frozen", arms=("fixed", "uncertainty", "direct"))
    for field in ("verdicts", "comparisons", "warnings", "movements", "studies"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(rep, field, None)

    calls = {"verdicts": [], "weight_movement": []}
    for name in calls:
        original = getattr(analyse, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            out = _original(*args, **kwargs)
            calls[_name].append(out)
            return out

        # wherever the report's modules hold the function, not only in analyse itself
        for module in [m for n, m in sys.modules.items() if n.startswith("study.report")]:
            if getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, counted)

    storage = full_storage(optuna.storages.InMemoryStorage(), "once")
    text = report.write_report(storage, "once", tmp_path / "r.html").read_text(encoding="utf-8")
    assert [len(c) for c in calls.values()] == [1, 1]
    (verdicts,) = calls["verdicts"]
    assert len(verdicts) == 2
    from optuna_dashboard import get_note

    note = get_note(optuna.load_study(study_name="once-fixed", storage=storage))
    for v in verdicts:
        said = sentences.verdict_text(v)
        assert said["lead"] and str(escape(said["lead"])) in text
        assert str(escape(said["evidence"])) in text
        for sentence in (said["lead"], said["evidence"]):  # the note makes angle brackets inert
            assert sentence.replace("<", "&lt;").replace(">", "&gt;") in note


# ----------------------------------------------------------------------------- HTML (static checks)


def test_write_report_full(tmp_path):
    url = sqlite_url(tmp_path / "study.db")
    full_storage(url, "full")
    out = report.write_report(
        url, "full", tmp_path / "sub" / "r.html", command=f"cmi-study report --storage {url}"
    )
    assert report.is_report(out)
    text = out.read_text(encoding="utf-8")
    assert text.count(get_plotlyjs()[:300]) == 1  # plotly.js embedded exactly once
    rest = text.replace(get_plotlyjs(), "")
    assert "<script src=" not in rest and "cdn.plot.ly" not in rest  # nothing to fetch: opens offline
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in text
    n = int(text.split('data-figures="')[1].split('"')[0])
    assert n == text.count('class="plotly-graph-div"') >= 12
    assert "practically equivalent" in text or "better" in text
    assert PASSWORD not in text
    assert "ab12cd34ef56" in text and "torch" in text
    assert "CUDA out of memory &lt;b&gt;" in text  # user strings escaped inside figure hovers too

    # dashboard: verdict note and key figures on every study
    from optuna_dashboard import get_note

    storage = optuna.storages.get_storage(url)

    def system_attrs(name: str) -> dict:
        return storage.get_study_system_attrs(storage.get_study_id_from_name(name))

    for name in ("full-fixed", "full-uncertainty", "full-direct", "full-confirm"):
        note = get_note(optuna.load_study(study_name=name, storage=storage))
        assert "uncertainty vs fixed" in note and "Full report" in note
        assert "95% interval [" in note and f"the population the {len(HOLDOUT)} held-out subjects" in note
        assert "No score looked at its own validation fold" in note
        attrs = system_attrs(name)
        assert any(k.startswith("dashboard:plot_data:cmi-report-compare-fixed-uncertainty:") for k in attrs)
    unc = system_attrs("full-uncertainty")
    assert any(k.startswith("dashboard:plot_data:cmi-report-weights:") for k in unc)
    # re-running overwrites instead of piling up graphs
    report.write_report(url, "full", tmp_path / "r2.html")
    attrs = system_attrs("full-fixed")
    ids = {k.split(":")[2] for k in attrs if k.startswith("dashboard:plot_data:")}
    # two comparisons, their forest plot and the two search plots
    assert all(i.startswith("cmi-report-") for i in ids) and len(ids) == 5 and "cmi-report-forest" in ids


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("one-arm", "Only one arm"),
        ("no-confirm", "No confirmation study"),
        ("all-bad", "no complete trial"),
        ("confirm-only", "No arm study"),
    ],
)
def test_write_report_degrades(tmp_path, case, expect):
    storage = optuna.storages.InMemoryStorage()
    if case == "one-arm":
        add_arm_study(storage, "d", "uncertainty")
    elif case == "no-confirm":
        add_arm_study(storage, "d", "fixed")
        add_arm_study(storage, "d", "direct")
    elif case == "all-bad":
        add_arm_study(storage, "d", "fixed", states=("PRUNED", "FAIL"))
        add_arm_study(storage, "d", "uncertainty", states=("FAIL", "RUNNING"))
    elif case == "confirm-only":
        add_confirm_study(storage, "d")
    text = report.write_report(storage, "d", tmp_path / "r.html").read_text(encoding="utf-8")
    assert expect in text
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in text


def test_malicious_study_name_is_escaped(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    add_evil_strings(add_arm_study(storage, EVIL, "fixed"))
    text = report.write_report(storage, EVIL, tmp_path / "r.html").read_text(encoding="utf-8")
    assert EVIL not in text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    # the command in the reproducibility table, escaped by the template
    assert "<code>cmi-study run --study-name &lt;script&gt;window.__pwned=1&lt;/script&gt;</code>" in text
    # the fail reason in the trial-scores hover text (plotly renders tags there; its JSON writes / as \u002f)
    assert "trial #8 failed: &lt;script&gt;window.__pwned=1&lt;" in text


def test_sections_are_numbered_from_the_list(monkeypatch):
    assert tuple(f"{i}. {s.title}" for i, s in enumerate(SECTIONS, 1)) == SECTION_TITLES
    assert section_titles(SECTIONS) == SECTION_TITLES
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "sec", "fixed")
    rep = report_of(storage, "sec")
    last, first = SECTIONS[-1], SECTIONS[0]
    monkeypatch.setattr(page, "SECTIONS", (last, first))
    text, _ = render_html(rep)
    assert f"<h2>1. {last.title}</h2>" in text and f"<h2>2. {first.title}</h2>" in text
    assert '<section id="1-reproducibility">' in text and '<a href="#2-headline">2. Headline</a>' in text
    assert text.count("<h2>") == 2 and "Arms, budgets and compute" in text


def test_report_without_optuna_dashboard(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import raises ImportError
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "nd", "fixed", states=("COMPLETE",))
    rep = report_of(storage, "nd")
    assert dashboard.save_to_dashboard(storage, rep, []) is False
    assert report.write_report(storage, "nd", tmp_path / "r.html").exists()


# ----------------------------------------------------------------------------- HTML in Chromium


@pytest.mark.slow
def test_report_renders_in_chromium(tmp_path, browser):
    storage = full_storage(optuna.storages.InMemoryStorage(), EVIL)
    add_evil_strings(optuna.load_study(study_name=f"{EVIL}-fixed", storage=storage))
    out = report.write_report(storage, EVIL, tmp_path / "report.html")
    open_report(browser, out)
    n = int(browser.find_element("css selector", "body").get_attribute("data-figures"))
    assert n >= 12
    assert rendered(browser) == n
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    headings = [h.text for h in browser.find_elements("css selector", "h2")]
    assert headings == list(SECTION_TITLES)
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert EVIL in browser.find_element("css selector", "h1").text  # shown as text, not run
    assert EVIL in browser.title
    verdict = browser.find_element("css selector", ".verdict")
    assert "95% interval [" in verdict.text and "held-out subjects" in verdict.text
    assert "No score looked at its own validation fold" in verdict.text
    subjects = verdict.find_element("css selector", "details.subjects p")
    assert not subjects.is_displayed()  # the list is folded away until asked for
    verdict.find_element("css selector", "details.subjects summary").click()
    assert subjects.is_displayed() and HOLDOUT[0] in subjects.text
    holm_note = browser.find_element("css selector", "p.holm").text
    assert "The 2 comparisons against fixed are decided together" in holm_note


@pytest.mark.slow
def test_degraded_report_renders_in_chromium(tmp_path, browser):
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "deg", "fixed", states=("PRUNED", "FAIL", "RUNNING"))
    out = report.write_report(storage, "deg", tmp_path / "deg.html")
    open_report(browser, out)
    n = int(browser.find_element("css selector", "body").get_attribute("data-figures"))
    assert rendered(browser) == n == 1  # only the trial-scores plot has something to show
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert [h.text for h in browser.find_elements("css selector", "h2")] == list(SECTION_TITLES)
    assert "Only one arm" in browser.find_element("css selector", "body").text
