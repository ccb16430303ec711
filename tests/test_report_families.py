"""Report, the arm families: the arms table grouped by family in FAMILIES order, the family beside
each arm in the sorted every-arm table and the forest plot, and Holm still over every arm of every
family (the statistics do not change with the grouping)."""

from __future__ import annotations

import re

import optuna
import pytest
from helpers.fake_study import BASE, GRADIENT_BASE, confirmed
from helpers.page import headline_html

from cmi_model.weighting import FAMILIES, SCHEMES
from study.report import comparison_figures as cmp_figs
from study.report.studies import UNKNOWN_FAMILY, by_family, family_of, family_order

optuna.logging.set_verbosity(optuna.logging.WARNING)

ARMS = ("fixed", "equal", "uncertainty", "direct", "upgrad", "pcgrad")


@pytest.fixture
def three_families(monkeypatch):
    """Two arms of each family confirmed against fixed, read and analysed."""
    for arm, base in {"equal": 0.695, **GRADIENT_BASE}.items():
        monkeypatch.setitem(BASE, arm, base)
    return confirmed("fam", arms=ARMS)


def test_families_come_from_the_schemes_in_their_order():
    assert {family_of(a) for a in SCHEMES} == set(FAMILIES)
    assert family_of("no-such-arm") == UNKNOWN_FAMILY
    shuffled = ["pcgrad", "no-such-arm", "direct", "fixed", "upgrad", "equal"]
    groups = by_family(shuffled)
    assert [f for f, _ in groups] == [*FAMILIES, UNKNOWN_FAMILY]
    assert groups[0][1] == ["fixed", "equal"] and groups[2][1] == ["upgrad", "pcgrad"]  # arm order within
    assert sorted(shuffled, key=family_order)[-1] == "no-such-arm"
    assert by_family(["direct"]) == [(SCHEMES["direct"].family, ["direct"])]  # empty families left out


def test_arms_table_is_grouped_by_family(three_families):
    html = headline_html(three_families)
    table = html[html.index('<table class="arms">') : html.index("</table>", html.index('"arms"'))]
    bodies = re.findall(r'<tbody class="family" data-family="([^"]+)">(.*?)</tbody>', table, re.S)
    assert [f for f, _ in bodies] == list(FAMILIES)
    for family, body in bodies:
        heading = re.search(r'<tr class="family"><th colspan="10">([^<]+) <span', body).group(1)
        assert heading == family
        arms = re.findall(r"■</span> ([a-z_]+)</td>", body)
        assert arms == [a for a in ARMS if SCHEMES[a].family == family]


def test_sorted_table_and_forest_show_the_family_and_keep_holm_over_all(three_families):
    rep = three_families
    # Holm over the five comparisons with fixed, whatever their family
    assert len(rep.comparisons) == 5 and all(c.n_adjusted == 5 for c in rep.comparisons)
    html = headline_html(rep)
    table = html[html.index('<table class="summary">') : html.index("</table>", html.index('"summary"'))]
    assert "<th>arm</th><th>family</th><th>weighting</th>" in table
    rows = re.findall(r"■</span> ([a-z_]+)</td><td>([^<]+)</td>", table)
    by_diff = sorted(rep.comparisons, key=lambda c: -c.primary.mean_diff)
    assert rows == [(c.b, SCHEMES[c.b].family) for c in by_diff]  # still one table sorted by difference
    assert {f for _, f in rows} == {"fixed", "loss-level", "gradient-level"}
    info = cmp_figs.forest_info(list(rep.comparisons))
    assert [(r.arm, r.family) for r in info.rows] == rows
    fig = cmp_figs.fig_forest(info)
    assert list(fig.data[0].y) == [r.arm for r in info.rows]  # the rows are the arms, as before
    assert [a.text for a in fig.layout.annotations if a.name == "family"] == [f for _, f in rows]
