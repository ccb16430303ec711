"""Report → one self-contained HTML page, from ``templates/report.html.j2``: the third stage
(read → analyse → draw), where the figure modules draw their records into sections.

The page is a declarative list of :class:`Section`: a title, the macro of
``templates/sections.html.j2`` that draws it, and a function that gathers the plain
values it shows. Section numbers come from the list's order. The template autoescapes
every value; only plotly's own figure markup, plotly.js and the stylesheet go in marked
safe, and plotly.js is embedded exactly once, so the page opens offline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from cmi_model.weighting import BASELINE_ARM, NO_TUNING_ARM, SCHEMES
from study import records
from study.records import CONFIRM
from study.report import budget_figures as budget_figs
from study.report import comparison_figures as cmp_figs
from study.report import metric_figures as metric_figs
from study.report import parameter_figures as param_figs
from study.report import reproducibility, sentences
from study.report import search_figures as search_figs
from study.report import tradeoff_figures as tradeoff_figs
from study.report import weight_figures as weight_figs
from study.report.analyse import Report
from study.report.sentences import ENV
from study.report.studies import (
    MIN_TRIALS_FOR_IMPORTANCES,
    ArmData,
    Studies,
    arm_order,
    by_family,
    family_of,
)
from study.report.style import arm_color, html_id, num, p_value, seconds

GENERATOR = "cmi-study"  # in the page's head: how `report --out` recognises a report it may replace


@dataclass
class _Page:
    """What the sections are gathered from, and the figures they place (plotly.js is embedded once for all)."""

    report: Report
    command: str | None
    figures: list[tuple[str, go.Figure]] = field(default_factory=list)

    def figure(self, key: str, fig: go.Figure | None, missing: str) -> dict[str, Any]:
        """A figure slot: the figure's markup, or the sentence saying why there is none."""
        if fig is None:
            return {"html": None, "missing": missing}
        div_id = f"fig-{len(self.figures)}-{html_id(key)}"
        self.figures.append((key, fig))
        config = {"displaylogo": False, "responsive": True}
        body = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=config)
        return {"html": Markup(body), "missing": ""}  # plotly's own markup, already JSON-escaped


def _by_arm(items: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(items.items(), key=lambda kv: arm_order(kv[0]))


# ----------------------------------------------------------------------------- 1. headline


def _state_cell(d: ArmData) -> str:
    counts = d.state_counts
    text = " / ".join(str(counts.get(s, 0)) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING"))
    if d.budget_skips:
        text += f" (+{d.budget_skips} stepped aside: budget already taken by other workers)"
    return text


def _confirmed(data: Studies, arm: str) -> str:
    if data.confirm is None:
        return "—"
    cs = data.confirm.scores[data.confirm.scores["arm"] == arm]["score"].astype(float).dropna()
    if not len(cs):
        return "—"
    sd = f" ± {cs.std(ddof=1):.4f}" if len(cs) > 1 else ""
    return f"{cs.mean():.4f}{sd} (n = {len(cs)})"


def _arm_row(data: Studies, arm: str) -> dict[str, Any]:
    d = data.arms.get(arm)
    c_sec = data.confirm.seconds(arm) if data.confirm else 0.0
    c_fold = data.confirm.fold_trainings(arm) if data.confirm else 0
    s_sec = d.seconds if d else 0.0
    s_fold = d.fold_trainings if d else 0
    total_fold = s_fold + c_fold
    return {
        "arm": arm,
        "family": family_of(arm),
        "color": arm_color(arm),
        "cells": [
            f"{SCHEMES[arm].label} ({SCHEMES[arm].paper})" if arm in SCHEMES else "",
            d.budget if d and d.budget is not None else "—",
            _state_cell(d) if d else "no search study",
            num(d.best.value) if d and d.best else "—",
            _confirmed(data, arm),
            f"{s_fold} + {c_fold}",
            f"{seconds(s_sec)} + {seconds(c_sec)}",
            seconds((s_sec + c_sec) / total_fold) if total_fold else "—",
            d.record.epochs if d and d.record.epochs is not None else "—",
        ],
    }


def _summary_row(cmp) -> dict[str, Any]:
    """One line of the every-arm table: the primary comparison's numbers, or why it has none."""
    c = cmp.primary
    label = SCHEMES[cmp.b].label if cmp.b in SCHEMES else ""
    if c is None:
        cells = [
            "—",
            "—",
            "too few paired scores" if cmp.too_few else "no verdict",
            "—",
            "—",
            "—",
            len(cmp.pairs),
        ]
    else:
        cells = [
            num(c.mean_diff, signed=True),
            f"[{num(c.ci_low, signed=True)}, {num(c.ci_high, signed=True)}]",
            cmp.verdict_words(),
            p_value(c.p_value),
            p_value(cmp.p_adjusted) if cmp.p_adjusted is not None else "—",
            num(c.p_equivalent, 3),
            c.n,
        ]
    source = {"confirmation": "confirmation, fold level", "search": "best search trials (selection-biased)"}
    if cmp.about_new_subjects:
        source["confirmation"] = f"confirmation, {cmp.subjects.n_subjects} held-out subjects"
    return {
        "arm": cmp.b,
        "color": arm_color(cmp.b),
        "cells": [family_of(cmp.b), label, *cells, source.get(cmp.source, "none")],
        "no_tuning_row": cmp.b == NO_TUNING_ARM,
    }


def _headline(page: _Page) -> dict[str, Any]:
    report, data = page.report, page.report.studies
    comparisons = list(report.comparisons)
    several = len(comparisons) >= 2  # two arms: the one verdict says it all
    return {
        "warnings": list(report.warnings),
        "info": report.data_info,
        "n_folds": data.n_folds,
        "n_outer": data.n_outer if data.outer else None,
        "arm_names": data.arm_names(),
        "verdicts": [{"v": v, "say": sentences.verdict_text(v)} for v in report.verdicts],
        "holm": sentences.holm_text(report.holm),
        "arm_groups": [
            {"family": family, "rows": [_arm_row(data, arm) for arm in arms]}
            for family, arms in by_family(data.arm_names())
        ],
        "summary": [_summary_row(c) for c in cmp_figs.sorted_comparisons(comparisons)] if several else [],
        "baseline": comparisons[0].a if comparisons else BASELINE_ARM,
        "level": next((c.level for c in comparisons if c.primary is not None), 95),
        "no_tuning": NO_TUNING_ARM,
        "rope": report.rope,
        "rope_note": _rope_note(report),
    }


def _rope_note(report) -> str:
    """Where the rope of every verdict comes from."""
    return sentences.sentence("rope_source", report.rope, report.stored_rope, report.rope_overridden)


# ----------------------------------------------------------------------------- 2.–6. figures


def _confirmation(page: _Page) -> dict[str, Any]:
    data, c = page.report.studies, page.report.studies.confirm
    comparisons = list(page.report.comparisons)
    confirm = None
    if c is not None:
        rows = []
        for arm in c.arms or sorted(set(c.trials["arm"]), key=arm_order):
            tt = c.trials[c.trials["arm"] == arm]
            finished = tt[tt["state"] == "COMPLETE"]
            current = finished[finished["current"].astype(bool)]
            done = ", ".join(map(str, sorted(int(s) for s in current["seed"]))) or "none"
            source = f"#{c.sources[arm]}" if c.sources.get(arm) is not None else "—"
            if data.outer:  # a nested run: each seed once per outer fold, each outer fold's own pick
                per_seed = current.groupby("seed")["outer"].nunique()
                done = (
                    ", ".join(f"{s} (in {n} of {len(data.outer)} outer folds)" for s, n in per_seed.items())
                    or "none"
                )
                source = (
                    "; ".join(
                        f"outer fold {k}: #{p.confirm.sources[arm]}"
                        for k, p in data.outer
                        if p.confirm is not None and p.confirm.sources.get(arm) is not None
                    )
                    or "—"
                )
            old = c.superseded.get(arm, [])
            rows.append(
                [
                    arm,
                    done,
                    source + (" (--force)" if arm in c.forced else ""),
                    ", ".join(f"seed {seed} of #{src}" for seed, src in old) or "—",
                    len(tt) - len(finished),
                    seconds(c.seconds(arm)),
                ]
            )
        seeds = ", ".join(map(str, c.seeds)) or "?"
        study_name = c.study_name
        if data.outer:
            study_name = ", ".join(p.confirm.study_name for _, p in data.outer if p.confirm is not None)
        n_folds = c.n_folds or "?"
        if data.outer:
            n_folds = f"{n_folds} ({data.n_folds} in each of {len(data.outer)} outer folds)"
        confirm = {"study_name": study_name, "seeds": seeds, "n_folds": n_folds, "rows": rows}
    forest = None
    if len(comparisons) >= 2:  # several arms against one baseline: all of them in one figure
        forest = page.figure(
            "forest",
            cmp_figs.fig_forest(cmp_figs.forest_info(comparisons)),
            sentences.sentence("no_forest"),
        )
    return {
        "confirm_name": records.study_name(
            records.outer_name(data.name, 1) if data.outer else data.name, CONFIRM
        ),
        "confirm": confirm,
        "outer": _outer_rows(page.report),
        "forest": forest,
        "figures": [
            slot
            for cmp in cmp_figs.sorted_comparisons(comparisons)
            for slot in (
                *(
                    [page.figure(f"subjects-{cmp.a}-{cmp.b}", cmp_figs.fig_subjects(cmp), "")]
                    if cmp.about_new_subjects
                    else []
                ),
                page.figure(
                    f"compare-{cmp.a}-{cmp.b}",
                    cmp_figs.fig_comparison(cmp, cmp_figs.reference_score(data, cmp)),
                    f"{cmp.b} vs {cmp.a}: {cmp.note}",
                ),
            )
        ],
        "no_tuning": NO_TUNING_ARM,
    }


def _search(page: _Page) -> dict[str, Any]:
    data = page.report.studies
    arms = data.arms
    # A nested run's figures show the first outer fold's searches; the confirmation section lists every pick.
    shown = data.outer[0][1].name if data.outer else None
    if not arms:
        return {"figures": None, "best_rows": [], "shown": shown}
    trials = search_figs.search_trials(arms)
    slots = [
        page.figure(
            "best-so-far",
            search_figs.fig_best_so_far(trials),
            sentences.sentence("no_complete_trial"),
        ),
        page.figure("trial-scores", search_figs.fig_trial_scores(trials), sentences.sentence("no_trials")),
    ]
    rows = []
    for arm, d in _by_arm(arms):
        if d.best is None:
            rows.append([arm, "—", "—", sentences.sentence("no_best", d.state_summary())])
            continue
        params = ", ".join(
            f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in d.best.params.items()
        )
        folds = ", ".join(num(s) for s in d.best.fold_scores)
        rows.append([arm, f"#{d.best.number}", num(d.best.value), f"{params}; folds: {folds}"])
    return {"figures": slots, "best_rows": rows, "shown": shown}


def _tuning(page: _Page) -> dict[str, Any]:
    data = page.report.studies
    curves = budget_figs.budget_curves(budget_figs.searches_of(data))
    slot = page.figure("budget", budget_figs.fig_budget(curves), sentences.sentence("no_complete_trial"))
    said = sentences.tuning_text(curves, page.report.verdicts) + sentences.frozen_text(page.report)
    searches = curves["outer_fold"].nunique() if len(curves) else 0
    return {"slot": slot, "said": said, "searches": searches, "baseline": BASELINE_ARM}


def _weights(page: _Page) -> dict[str, Any]:
    data, moved = page.report.studies, page.report.movements
    learned = [a for a in data.arm_names() if weight_figs.has_panel(a)]
    info = weight_figs.weights_info(data.arms, moved, weight_figs.fixed_reference_weights(data.arms))
    drawn = [p.arm for p in info.panels] if info is not None else []
    absent = []
    for arm in (a for a in learned if a not in drawn):
        d = data.arms.get(arm)
        best = "no study" if d is None else (d.best.number if d.best is not None else None)
        absent.append(sentences.sentence("no_trajectory", arm, best))
    slot = page.figure("weights", weight_figs.fig_weights(info), "") if info is not None else None
    return {
        "slot": slot,
        "learned": learned,
        "movements": [sentences.movement_text(moved[a]) for a in learned if a in moved],
        "absent": absent,
        "no_reference": info is not None and not info.fixed,
        "has_no_tuning": NO_TUNING_ARM in data.arm_names(),
        "panel_arms": [a for a in SCHEMES if weight_figs.has_panel(a)],
        "optimum_arms": [a for a in SCHEMES if weight_figs.has_inverse_optimum(a)],
        "baseline": BASELINE_ARM,
        "no_tuning": NO_TUNING_ARM,
        "no_optimum": [p.arm for p in info.panels if weight_figs.has_inverse_optimum(p.arm) and not p.optimum]
        if info
        else [],
    }


def _landscape(page: _Page) -> dict[str, Any]:
    arms = page.report.studies.arms
    fixed = arms.get(BASELINE_ARM)
    slots = None
    if fixed is not None:
        slots = [
            page.figure(
                "fixed-landscape",
                param_figs.fig_fixed_landscape(param_figs.landscape_info(fixed)),
                sentences.sentence(
                    "no_landscape",
                    param_figs.MIN_TRIALS_FOR_LANDSCAPE,
                    BASELINE_ARM,
                    param_figs.landscape_count(fixed),
                ),
            ),
            page.figure(
                "fixed-slices",
                param_figs.fig_slices(param_figs.slice_info(fixed)),
                sentences.sentence("no_slices", BASELINE_ARM),
            ),
        ]
    importances = page.figure(
        "importances",
        param_figs.fig_importances(param_figs.importances_info(arms)),
        sentences.sentence("no_importances", MIN_TRIALS_FOR_IMPORTANCES),
    )
    notes = [[arm, d.importance_note] for arm, d in _by_arm(arms)]
    return {"figures": slots, "importances": importances, "notes": notes}


def _metric_parts(page: _Page) -> dict[str, Any]:
    reports = page.report.studies.class_reports()
    info = tradeoff_figs.tradeoff_info(page.report.studies)
    tradeoff = page.figure(
        "tradeoff", tradeoff_figs.fig_tradeoff(info), sentences.tradeoff_note(page.report.studies)
    )
    parts = page.figure(
        "metric-parts",
        metric_figs.fig_metric_parts(metric_figs.metric_parts_frame(page.report.studies)),
        sentences.sentence("no_metric_parts"),
    )
    rows = [
        [arm, r.source, r.n, num(r.score), num(r.binary_f1), num(r.macro_f1)] for arm, r in reports.items()
    ]
    per_class = page.figure(
        "per-class-f1",
        metric_figs.fig_per_class_f1(reports),
        sentences.sentence("no_oof"),
    )
    confusions = [
        page.figure(f"confusion-{arm}", metric_figs.fig_confusion(arm, rep), "")
        for arm, rep in reports.items()
    ]
    return {
        "tradeoff": tradeoff,
        "tradeoff_text": sentences.tradeoff_text(info) if info is not None else "",
        "baseline": BASELINE_ARM,
        "parts": parts,
        "class_rows": rows,
        "per_class": per_class,
        "confusions": confusions,
    }


def _outer_rows(report: Report) -> dict[str, Any] | None:
    """A nested run: each (outer fold, arm) search's pick, and how far the picks' outcomes spread."""
    if not report.studies.outer:
        return None
    rows = [
        [
            p.outer,
            p.arm,
            p.held_out,
            p.trials,
            f"#{p.best_trial}" if p.best_trial is not None else "—",
            num(p.cv_score) if p.cv_score is not None else "—",
            num(p.confirmed) if p.confirmed is not None else "not confirmed",
            ", ".join(f"{k}={num(v) if isinstance(v, float) else v}" for k, v in sorted(p.params.items()))
            or "—",
        ]
        for p in report.picks
    ]
    spreads = [sentences.sentence("spread", v) for v in report.verdicts if v.spread is not None]
    return {"rows": rows, "spreads": spreads, "n_outer": report.studies.n_outer or len(report.studies.outer)}


# ----------------------------------------------------------------------------- the page


@dataclass(frozen=True)
class Section:
    title: str
    macro: str  # the macro of templates/sections.html.j2 that draws it
    gather: Callable[[_Page], dict[str, Any]]  # the values the macro shows, as keyword arguments


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


SECTIONS: tuple[Section, ...] = (
    Section("Headline", "headline", _headline),
    Section("Confirmation", "confirmation", _confirmation),
    Section("Search", "search", _search),
    Section("What tuning buys", "tuning", _tuning),
    Section("Learned weights", "weights", _weights),
    Section("Fixed-weight landscape", "landscape", _landscape),
    Section("Metric parts", "metric_parts", _metric_parts),
    Section(
        "Reproducibility", "reproducibility", lambda page: reproducibility.section(page.report, page.command)
    ),
)


def section_titles(sections: tuple[Section, ...]) -> tuple[str, ...]:
    """``1. Headline``, …: numbered by position in the list."""
    return tuple(f"{i}. {s.title}" for i, s in enumerate(sections, 1))


SECTION_TITLES: tuple[str, ...] = section_titles(SECTIONS)


def render_html(report: Report, *, command: str | None = None) -> tuple[str, list[tuple[str, go.Figure]]]:
    """The report page as one string (plotly.js embedded once) and the figures it contains."""
    page = _Page(report, command)
    sections = [
        {"title": title, "anchor": _anchor(title), "macro": s.macro, "values": s.gather(page)}
        for s, title in zip(SECTIONS, section_titles(SECTIONS), strict=True)
    ]
    css = ENV.loader.get_source(ENV, "report.css")[0]  # type: ignore[union-attr]
    doc = ENV.get_template("report.html.j2").render(
        data=report.studies,
        sections=sections,
        n_figures=len(page.figures),
        generator=GENERATOR,
        css=Markup(css),  # our own stylesheet
        plotlyjs=Markup(get_plotlyjs()),
    )
    return doc, page.figures
