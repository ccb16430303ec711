"""Report, third stage: each figure's plain record (no plotly in it) and the figure drawn from it,
``None`` where there is nothing to draw; the forest plot and the learned-weights figure in detail."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
import pytest
from helpers.fake_study import (
    DEFAULT_STATES,
    DELTA,
    ENOUGH_FOR_IMPORTANCES,
    TERMS,
    K,
    add_arm_study,
    full_storage,
    report_of,
)

from cmi_model.weighting import SCHEMES
from study.report import analyse
from study.report import comparison_figures as cmp_figs
from study.report import metric_figures as metric_figs
from study.report import parameter_figures as param_figs
from study.report import search_figures as search_figs
from study.report import tradeoff_figures as tradeoff_figs
from study.report import weight_figures as weight_figs
from study.report.page import render_html
from study.report.style import arm_color

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _plotly_objects(obj, path="data") -> list[str]:
    """Paths of every plotly object inside obj (dataclasses, dicts, lists and DataFrame cells walked)."""
    if type(obj).__module__.startswith("plotly"):
        return [path]
    if isinstance(obj, pd.DataFrame):
        cells = [v for col in obj.columns for v in obj[col].tolist()]
        return [p for i, v in enumerate(cells) for p in _plotly_objects(v, f"{path}[{i}]")]
    if dataclasses.is_dataclass(obj):
        return [
            p
            for f in dataclasses.fields(obj)
            for p in _plotly_objects(getattr(obj, f.name), f"{path}.{f.name}")
        ]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _plotly_objects(v, f"{path}[{k!r}]")]
    if isinstance(obj, list | tuple):
        return [p for i, v in enumerate(obj) for p in _plotly_objects(v, f"{path}[{i}]")]
    return []


def weights_record(rep: analyse.Report) -> weight_figs.WeightsInfo | None:
    """The learned-weights figure's record, as the page gathers it."""
    arms = rep.studies.arms
    return weight_figs.weights_info(
        arms, analyse.weight_movement(rep.studies), weight_figs.fixed_reference_weights(arms)
    )


# ----------------------------------------------------------------------------- records and smoke tests


def test_figure_records_are_plain_data():
    rep = report_of(full_storage(optuna.storages.InMemoryStorage(), "plain"), "plain")
    data = rep.studies
    ref = weight_figs.fixed_reference_weights(data.arms)
    figure_records = {
        "comparison": rep.comparisons[0],
        "forest": cmp_figs.forest_info(list(rep.comparisons)),
        "search": search_figs.search_trials(data.arms),
        "weights": weight_figs.weights_info(data.arms, analyse.weight_movement(data), ref),
        "landscape": param_figs.landscape_info(data.arms["fixed"]),
        "slices": param_figs.slice_info(data.arms["fixed"]),
        "importances": param_figs.importances_info(data.arms),
        "metric parts": metric_figs.metric_parts_frame(data),
        "classes": data.class_reports(),
        "tradeoff": tradeoff_figs.tradeoff_info(data),
    }
    # 5 complete trials per arm: a landscape (from 5), but no importances (from 8): a sentence instead
    assert figure_records.pop("importances") == {}
    assert all(r is not None and (not hasattr(r, "__len__") or len(r)) for r in figure_records.values())
    assert _plotly_objects(figure_records) == [] and _plotly_objects(rep) == []
    search = figure_records["search"]
    assert list(search.columns) == search_figs.SEARCH_COLUMNS
    assert list(search["arm"].unique()) == ["fixed", "uncertainty", "direct"]
    assert len(search) == 3 * len(DEFAULT_STATES)
    w = figure_records["weights"]
    assert [p.arm for p in w.panels] == ["uncertainty", "direct"]
    assert w.terms == ["multiclass", "binary", "nine_class", "kl"] and len(w.panels[0].trajectory) == K
    assert w.fixed == pytest.approx(ref)
    # 1/L of each epoch's training loss: the uncertainty arm's stationary weight; none for direct
    loss = data.arms["uncertainty"].best.folds[0].loss_trajectory["binary"]
    assert w.panels[0].optimum[0]["binary"] == pytest.approx([1 / v for v in loss])
    assert w.panels[1].optimum == []
    assert w.panels[0].movement.largest == pytest.approx(DELTA["uncertainty"])
    land = figure_records["landscape"]
    assert len(land.trials) == 5 and land.best[0] == data.arms["fixed"].best.number
    sl = figure_records["slices"]
    assert sl.params == ["alpha", "nine_class_loss_weight", "kl_weight", "lr", "weight_decay", "dropout"]
    assert sl.log == {p: p in ("lr", "weight_decay") for p in sl.params}
    enough = report_of(
        full_storage(optuna.storages.InMemoryStorage(), "enough", states=ENOUGH_FOR_IMPORTANCES), "enough"
    )
    assert list(param_figs.importances_info(enough.studies.arms)) == ["fixed", "uncertainty", "direct"]


def test_figure_smoke():
    rep = report_of(
        full_storage(optuna.storages.InMemoryStorage(), "figs", states=ENOUGH_FOR_IMPORTANCES), "figs"
    )
    data = rep.studies
    figs = [
        cmp_figs.fig_comparison(rep.comparisons[0]),
        search_figs.fig_best_so_far(search_figs.search_trials(data.arms)),
        search_figs.fig_trial_scores(search_figs.search_trials(data.arms)),
        weight_figs.fig_weights(weights_record(rep)),
        param_figs.fig_fixed_landscape(param_figs.landscape_info(data.arms["fixed"])),
        param_figs.fig_slices(param_figs.slice_info(data.arms["fixed"])),
        param_figs.fig_importances(param_figs.importances_info(data.arms)),
        metric_figs.fig_metric_parts(metric_figs.metric_parts_frame(data)),
        metric_figs.fig_per_class_f1(data.class_reports()),
        metric_figs.fig_confusion("fixed", data.class_reports()["fixed"]),
        cmp_figs.fig_forest(cmp_figs.forest_info(list(rep.comparisons))),
        tradeoff_figs.fig_tradeoff(tradeoff_figs.tradeoff_info(data)),
    ]
    for fig in figs:
        assert isinstance(fig, go.Figure) and len(fig.data) >= 1
        fig.to_json()
    ref = weight_figs.fixed_reference_weights(data.arms)
    best = data.arms["fixed"].best
    assert ref["kl"] == pytest.approx(best.params["kl_weight"])
    # the best-so-far curve never decreases
    y = np.array(figs[1].data[0].y, dtype=float)
    assert np.all(np.diff(y) >= 0)


def test_figures_return_none_without_data():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "bare", "uncertainty", states=("FAIL",))
    rep = report_of(storage, "bare")
    data = rep.studies
    assert search_figs.fig_best_so_far(search_figs.search_trials(data.arms)) is None
    assert weight_figs.fig_weights(weight_figs.weights_info(data.arms)) is None
    assert param_figs.fig_importances(param_figs.importances_info(data.arms)) is None
    assert metric_figs.fig_metric_parts(metric_figs.metric_parts_frame(data)) is None
    assert metric_figs.fig_per_class_f1(data.class_reports()) is None
    assert cmp_figs.forest_info(list(rep.comparisons)) is None and cmp_figs.fig_forest(None) is None
    # the failed trial is still shown
    assert isinstance(search_figs.fig_trial_scores(search_figs.search_trials(data.arms)), go.Figure)


# ----------------------------------------------------------------------------- the learned weights


def test_weights_figure_shares_a_log_axis_and_draws_the_references():
    rep = report_of(full_storage(optuna.storages.InMemoryStorage(), "wf"), "wf")
    info = weights_record(rep)
    fig = weight_figs.fig_weights(info)
    layout = fig.layout
    assert layout.yaxis.type == "log" and layout.yaxis2.type == "log"  # one panel per learned arm
    assert layout.yaxis2.matches == "y"  # the same axis: weights compare across arms
    drawn = [t for t in fig.data if t.x and t.x[0] is not None]
    assert {t.xaxis for t in drawn} == {"x", "x2"}
    # every (term, fold) line of a panel: the term's colour, the fold's own dash and marker
    unc = [t for t in drawn if t.xaxis == "x" and t.name.startswith("multiclass, fold")]
    assert len(unc) == K and len({t.line.color for t in unc}) == 1
    assert len({(t.line.dash, t.marker.symbol) for t in unc}) == K
    arm_colors = {arm_color(arm) for arm in SCHEMES}
    assert not any(t.line.color in arm_colors for t in drawn if t.line.color)
    # the uncertainty weights against 1/L (dotted, same colour); none on the direct panel
    refs = [t for t in drawn if t.name.startswith("1/L ")]
    assert len(refs) == K * len(TERMS) and {t.xaxis for t in refs} == {"x"}
    assert all(t.line.dash == "dot" for t in refs)
    ref = next(t for t in refs if t.name == "1/L multiclass, fold 0")
    assert ref.line.color == unc[0].line.color
    loss = rep.studies.arms["uncertainty"].best.folds[0].loss_trajectory["multiclass"]
    assert list(ref.y) == pytest.approx([1 / v for v in loss])
    # how far the weights moved, in words
    assert "max |Δs| 0.800 (search + confirm)" in layout.annotations[0].text
    text, _ = render_html(rep)
    assert "uncertainty: the learned log-weights moved at most |Δs| = 0.800" in text
    assert "direct: the learned log-weights moved at most |Δs| = 0.500" in text


def test_weight_trajectories_of_every_arm_but_fixed_and_equal(all_arms):
    rep = all_arms
    moved = analyse.weight_movement(rep.studies)
    assert set(moved) == {"uncertainty", "direct", "dwa", "famo", "imtl_l"}  # equal and rlw learn nothing
    info = weight_figs.weights_info(
        rep.studies.arms, moved, weight_figs.fixed_reference_weights(rep.studies.arms)
    )
    assert [p.arm for p in info.panels] == ["uncertainty", "direct", "dwa", "famo", "imtl_l", "rlw"]
    assert info.equal
    # the 1/L reference where it is the stationary weight: uncertainty and IMTL-L
    assert [p.arm for p in info.panels if p.optimum] == ["uncertainty", "imtl_l"]
    fig = weight_figs.fig_weights(info)
    layout = fig.layout
    # one axis for every panel: every y axis matches the same one (plotly anchors them at the bottom left)
    matches = [layout[f"yaxis{i}"].matches for i in ("", 2, 3, 4, 5, 6)]
    assert matches.count(None) == 1 and len(set(matches) - {None}) == 1
    assert all(layout[f"yaxis{i}"].type == "log" for i in ("", 2, 3, 4, 5, 6))
    refs = {t.xaxis for t in fig.data if t.name.startswith("1/L ")}
    assert refs == {"x", "x5"}  # uncertainty and imtl_l
    equal_lines = [t for t in fig.data if t.name == "equal arm: every weight 1"]
    assert len(equal_lines) == 6 and all(list(t.y) == [1.0, 1.0] for t in equal_lines)
    titles = [a.text for a in layout.annotations]
    assert titles[-1] == "rlw: best trial #4<br>set by rule, nothing learned"
    text, _ = render_html(rep)
    assert "the dashed black line is the equal arm, every weight 1" in text


# ----------------------------------------------------------------------------- every arm against fixed


def test_forest_plot_of_every_arm_with_the_rope_and_no_tuning(all_arms):
    rep = all_arms
    info = cmp_figs.forest_info(list(rep.comparisons))
    assert [r.arm for r in info.rows] == [
        c.b for c in sorted(rep.comparisons, key=lambda c: -c.comparison.mean_diff)
    ]
    assert info.reference.arm == "equal" and info.rope == 0.01 and info.baseline == "fixed"
    assert info.rows == [cmp_figs.forest_row(c) for c in cmp_figs.sorted_comparisons(list(rep.comparisons))]
    fig = cmp_figs.fig_forest(info)
    (points,) = fig.data
    assert list(points.y) == [r.arm for r in info.rows]
    assert list(points.error_x.array) == pytest.approx([r.high - r.mean for r in info.rows])
    rope = [sh for sh in fig.layout.shapes if sh.type == "rect"]
    assert len(rope) == 1 and (rope[0].x0, rope[0].x1) == (-0.01, 0.01)
    equal_line = [sh for sh in fig.layout.shapes if sh.type == "line" and sh.line.dash == "dash"]
    assert len(equal_line) == 1 and equal_line[0].x0 == pytest.approx(info.reference.mean)
    assert [a.text for a in fig.layout.annotations if a.name != "family"] == ["equal: what no tuning gives"]
    # each row's family in the right margin and in its hover; the rows stay sorted across families
    families = [(a.y, a.text) for a in fig.layout.annotations if a.name == "family"]
    assert families == [(r.arm, SCHEMES[r.arm].family) for r in info.rows]
    assert all(
        f"{r.arm} ({SCHEMES[r.arm].family}) − fixed" in t for r, t in zip(info.rows, points.text, strict=True)
    )
    # where scores are plotted, equal is the dashed reference line beside each other comparison
    unc = next(c for c in rep.comparisons if c.b == "uncertainty")
    ref = cmp_figs.reference_score(rep.studies, unc)
    scores = rep.studies.confirm.scores
    eq = scores[scores["arm"] == "equal"]["score"]
    assert ref == pytest.approx(eq.mean())
    fig = cmp_figs.fig_comparison(unc, ref)
    assert any("equal: what no tuning gives" in a.text for a in fig.layout.annotations)
    equal = next(c for c in rep.comparisons if c.b == "equal")
    assert cmp_figs.reference_score(rep.studies, equal) is None  # not beside itself
    text, figs = render_html(rep)
    keys = [k for k, _ in figs]
    assert "forest" in keys and keys.index("forest") < keys.index("compare-fixed-uncertainty")


def test_figures_that_need_more_trials_say_so_instead():
    storage = optuna.storages.InMemoryStorage()
    add_arm_study(storage, "few", "fixed", ("COMPLETE",) * 4 + ("PRUNED",))
    add_arm_study(storage, "few", "uncertainty", ENOUGH_FOR_IMPORTANCES)
    data = report_of(storage, "few").studies
    assert param_figs.landscape_info(data.arms["fixed"]) is None  # 4 of the 5 a landscape needs
    assert data.arms[
        "fixed"
    ].importances is None and "needs about 8 complete trials to say anything, this arm has 4" in (
        data.arms["fixed"].importance_note
    )
    assert list(param_figs.importances_info(data.arms)) == ["uncertainty"]  # its 8 are enough
    page = render_html(report_of(storage, "few"))[0]
    assert (
        "a landscape over alpha × kl_weight needs at least 5 complete fixed trials, this study has 4" in page
    )
