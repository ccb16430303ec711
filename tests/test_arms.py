"""Every arm (`--arms all`) through the CLI: `run`, `confirm` and `report` on the tiny preset.

Equal budget (every arm exactly --n-trials finished trials on the same folds, the same shared
parameters in its enqueued baseline), and a report that shows every arm in the every-arm table,
the forest plot and the weight trajectories, statically and in headless Chromium.
"""

from __future__ import annotations

import json
import math
import re
import shutil

import optuna
import pytest
from helpers import sqlite_url
from helpers.page import open_report, rendered
from optuna.trial import TrialState

from cmi_model.weighting import ALL_ARMS, SCHEMES
from study import records, space
from study.cli import main

ARMS = ALL_ARMS
N_TRIALS = 2
PANELS = tuple(
    a for a in ARMS if SCHEMES[a].weights_vary
)  # a weights panel each; fixed: stars, equal: the line

pytestmark = pytest.mark.slow  # ~4 min on 2 CPU cores


@pytest.fixture(scope="module")
def arms_run(tmp_path_factory):
    """Every arm, 2 trials each (tiny: 2 folds, 1 epoch), confirmed on 2 seeds, then the report."""
    folder = tmp_path_factory.mktemp("arms")
    url = sqlite_url(folder / "study.db")
    argv = ["run", "--preset", "tiny", "--storage", url, "--study-name", "a", "--arms", "all"]
    assert main([*argv, "--n-trials", str(N_TRIALS)]) == 0
    # 2 seeds × 2 folds: 4 paired scores per comparison, enough for an interval (at least 3)
    assert main(["confirm", "--storage", url, "--study-name", "a", "--seeds", "2"]) == 0
    out = folder / "report.html"
    assert main(["report", "--storage", url, "--study-name", "a", "--out", str(out)]) == 0
    return url, "a", out


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def test_every_arm_gets_the_same_budget_folds_and_baseline(arms_run):
    url, name, _ = arms_run
    studies = {arm: load(url, f"{name}-{arm}") for arm in ARMS}
    orders, baselines, shared_spaces = set(), {}, set()
    for arm, study in studies.items():
        complete = study.get_trials(states=(TrialState.COMPLETE,))
        assert len(complete) == len(study.trials) == N_TRIALS, arm  # exactly --n-trials finished trials
        rec = records.read_arm_study(study)
        assert rec.arm == arm and rec.n_trials == N_TRIALS
        shared_spaces.add(json.dumps({p.name: rec.search_space[p.name] for p in space.SHARED}))
        assert set(rec.search_space) == {p.name for p in space.params_of(arm)}
        first = study.trials[0].params
        baselines[arm] = first
        assert {k: first[k] for k in space.BASELINE[arm]} == space.BASELINE[arm], arm  # the papers' defaults
        for t in study.trials:
            r = records.read_trial(t)
            orders.add(tuple(r.oof.y_true))
            for fold in r.folds:
                assert set(fold.weight_trajectory) == {"multiclass", "binary", "nine_class", "kl"}
    assert len(orders) == 1  # the same folds for every trial of every arm (same out-of-fold order)
    assert len(shared_spaces) == 1  # the same shared search space
    shared = {p.name for p in space.SHARED}
    assert len({json.dumps({k: b[k] for k in sorted(shared)}) for b in baselines.values()}) == 1
    assert baselines["dwa"]["dwa_temperature"] == 2.0 and baselines["famo"]["famo_lr"] == 0.025
    assert baselines["famo"]["kl_weight"] == 0.1 and baselines["cagrad"]["cagrad_c"] == 0.4
    assert baselines["nash_mtl"]["nash_update_every"] == 1
    for arm in ("equal", "rlw", "upgrad", "mgda", "pcgrad", "imtl_g", "aligned_mtl"):
        assert set(baselines[arm]) == shared, arm  # nothing of their own to search


def test_every_arm_is_confirmed_on_the_same_splits(arms_run):
    url, name, _ = arms_run
    confirm = load(url, f"{name}-confirm")
    runs = [records.read_trial(t) for t in confirm.get_trials(states=(TrialState.COMPLETE,))]
    assert sorted((r.arm, r.seed) for r in runs) == sorted((a, s) for a in ARMS for s in (1, 2))
    for seed in (1, 2):
        assert len({tuple(r.oof.y_true) for r in runs if r.seed == seed}) == 1


def _figure(html: str, key: str) -> dict:
    """The plotly JSON of the report's figure ``key`` (its div id is fig-N-key)."""
    m = re.search(rf'id="(fig-\d+-{re.escape(key)})"', html)
    assert m, key
    start = html.index("Plotly.newPlot(", m.end())
    call = html[start : html.index("</script>", start)]
    decoder = json.JSONDecoder()
    data = call[call.index("[") :]  # Plotly.newPlot("fig-…", [traces], {layout}, {config})
    traces, end = decoder.raw_decode(data)
    layout, _ = decoder.raw_decode(data[end:].lstrip(", "))
    return {"data": traces, "layout": layout}


def test_the_report_shows_every_arm(arms_run):
    _, _, out = arms_run
    html = out.read_text(encoding="utf-8")
    # the every-arm table: one row per arm against fixed
    table = html[html.index('<table class="summary">') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr[^>]*><td><span class=\"arm\"[^>]*>■</span> ([a-z_]+)</td>", table)
    assert sorted(rows) == sorted(a for a in ARMS if a != "fixed")
    assert "Holm-adjusted p" in table and 'class="reference"' in table  # equal: the reference row
    # the forest plot: every arm against fixed, the rope band and equal's line
    forest = _figure(html, "forest")
    (points,) = forest["data"]
    assert sorted(points["y"]) == sorted(a for a in ARMS if a != "fixed")
    means = points["x"]
    assert means == sorted(means, reverse=True)  # best first
    assert any(s.get("type") == "rect" for s in forest["layout"]["shapes"])  # the ±rope band
    assert any(a["text"] == "equal: what no tuning gives" for a in forest["layout"]["annotations"])
    # the weight trajectories: a panel per arm but fixed (stars) and equal (the line at 1)
    weights = _figure(html, "weights")
    titles = [a["text"] for a in weights["layout"]["annotations"]]
    assert [t.split(":")[0] for t in titles] == list(PANELS)
    names = {t.get("name") for t in weights["data"]}
    assert {"best fixed trial", "equal arm: every weight 1 (no tuning)"} <= names
    # 1/L references on the panels of the schemes stationary at 1/L only (uncertainty's)
    refs = {t["xaxis"] for t in weights["data"] if str(t.get("name", "")).startswith("1/L ")}
    axes = [f"x{i + 1}" if i else "x" for i, a in enumerate(PANELS) if SCHEMES[a].inverse_loss_optimum]
    assert refs == set(axes) == {"x"}
    for arm in ARMS[1:]:  # and each arm's own comparison with fixed
        assert re.search(rf'id="fig-\d+-compare-fixed-{arm}"', html), arm


def test_the_report_renders_every_arm_in_chromium(arms_run, browser, tmp_path):
    _, _, out = arms_run
    page = tmp_path / "report.html"
    shutil.copy(out, page)
    open_report(browser, page)
    n = int(browser.find_element("css selector", "body").get_attribute("data-figures"))
    assert rendered(browser) == n >= 10
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    rows = browser.find_elements("css selector", "table.summary tbody tr")
    assert sorted(r.find_element("css selector", "td").text.strip("■ ") for r in rows) == sorted(
        a for a in ARMS if a != "fixed"
    )
    forest = browser.find_element("css selector", "[id*='-forest']")
    ticks = [t.text for t in forest.find_elements("css selector", ".ytick text")]
    assert sorted(ticks) == sorted(a for a in ARMS if a != "fixed")
    weights = browser.find_element("css selector", "[id*='-weights']")
    text = weights.text
    assert all(f"{arm}: best trial" in text for arm in PANELS)
    # the trade-off front: every confirmed arm placed against the fixed trials' front, and said
    tradeoff = browser.find_element("css selector", "[id*='-tradeoff']")
    legend = [t.text for t in tradeoff.find_elements("css selector", ".legendtext")]
    assert set(ARMS) <= set(legend), sorted(set(ARMS) - set(legend))
    said = browser.find_element("css selector", "p.tradeoff").text
    assert all(re.search(rf"\b{arm}\b", said) for arm in ARMS), said


def test_every_arm_trains_in_bf16_within_noise_of_fp32(arms_run):
    """`--precision bf16-mixed` on a CPU: the GPU's numeric path (autocast) for every arm.

    Each arm's first trial (its baseline: the same parameters, folds and seeds in both runs)
    scores within 0.05 of the fp32 run's. Measured at this size: |bf16 − fp32| ≤ 0.007 over every
    arm, while changing the seed alone moved the same scores by 0.07-0.16 (tiny model, 1 epoch,
    2 validation subjects per fold), so 0.05 is far inside the noise and far outside bf16's
    rounding: a dtype bug (a log or exp taken in bf16, a bf16 metric) lands beyond it or at NaN."""
    url, name, _ = arms_run
    argv = ["run", "--preset", "tiny", "--storage", url, "--study-name", "bf16", "--arms", "all"]
    assert main([*argv, "--n-trials", "1", "--precision", "bf16-mixed"]) == 0
    for arm in ARMS:
        (bf16,) = load(url, f"bf16-{arm}").trials
        fp32 = load(url, f"{name}-{arm}").trials[0]
        assert bf16.state == TrialState.COMPLETE and bf16.params == fp32.params, arm
        rec = records.read_trial(bf16)
        assert rec.precision == "bf16-mixed" and records.read_trial(fp32).precision == "32-true"
        for fold in rec.folds:
            assert all(math.isfinite(w) for ws in fold.weight_trajectory.values() for w in ws), arm
        assert abs(bf16.value - fp32.value) <= 0.05, (arm, bf16.value, fp32.value)
