"""The verdict as an optuna-dashboard note, and the key figures as dashboard graphs, on every study."""

from __future__ import annotations

from collections.abc import Sequence

import optuna
import plotly.graph_objects as go

from study import records
from study.records import CONFIRM
from study.report.compare import ArmComparison
from study.report.data import ReportData
from study.report.extract import resolve_storage
from study.report.fmt import p_value

DASHBOARD_GRAPH_PREFIX = "cmi-report-"


def verdict_sentence(cmp: ArmComparison) -> str:
    """One plain-text line: the verdict and the numbers behind it."""
    c = cmp.comparison
    if c is None:
        return f"{cmp.b} vs {cmp.a}: no verdict. {cmp.note}"
    bias = " [SELECTION-BIASED: best search trials, no confirmation]" if cmp.selection_biased else ""
    return (
        f"{cmp.b} vs {cmp.a}: {cmp.verdict_words()}{bias}. Mean difference ({cmp.b} − {cmp.a}) {c.mean_diff:+.4f}, "
        f"{cmp.level}% CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}], corrected p = {p_value(c.p_value)}; "
        f"P({cmp.a} better) = {c.p_a_better:.3f}, P(equivalent within ±{c.rope}) = {c.p_equivalent:.3f}, "
        f"P({cmp.b} better) = {c.p_b_better:.3f}; J = {c.n} paired scores."
    )


def dashboard_note(data: ReportData, report_path: str | None = None) -> str:
    """Markdown note with the verdict(s) for optuna-dashboard."""
    lines = [f"## Loss-weighting verdict ({data.generated_at})", ""]
    names = data.arm_names()
    if len(names) < 2:
        lines.append(f"Only one arm ({', '.join(names) or 'none'}): nothing to compare yet.")
    for cmp in data.comparisons:
        lines.append(f"- {verdict_sentence(cmp)}")
    if data.confirm is None:
        lines += [
            "",
            "No confirmation study yet: the numbers above come from the best search trials (selection-biased).",
        ]
    if report_path:
        lines += ["", f"Full report: `{report_path}`"]
    # The dashboard renders Markdown; keep angle brackets from user strings inert.
    return "\n".join(lines).replace("<", "&lt;").replace(">", "&gt;")


def _graph_keys(keys: Sequence[str], part: str) -> list[str]:
    """The figures saved on study ``NAME-part``: comparisons and search plots on all, weights on their arm."""
    shown = [k for k in keys if k.startswith("compare-") or k in ("best-so-far", "trial-scores")]
    return shown + [k for k in keys if k == f"weights-{part}"]


def save_to_dashboard(
    storage: str | optuna.storages.BaseStorage,
    data: ReportData,
    figures: Sequence[tuple[str, go.Figure]],
    report_path: str | None = None,
) -> bool:
    """Save the verdict note and key figures on every study of the report; False if optuna_dashboard is missing."""
    try:
        import optuna_dashboard
    except ImportError:
        return False
    backend = resolve_storage(storage)
    note = dashboard_note(data, report_path)
    by_key = dict(figures)
    parts = [*data.arms, *([CONFIRM] if data.confirm is not None else [])]
    for part in parts:
        study = optuna.load_study(study_name=records.study_name(data.name, part), storage=backend)
        optuna_dashboard.save_note(study, note)
        for key in _graph_keys(list(by_key), part):
            optuna_dashboard.save_plotly_graph_object(
                study, _lean(by_key[key]), graph_object_id=DASHBOARD_GRAPH_PREFIX + key
            )
    return True


def _lean(fig: go.Figure) -> go.Figure:
    """A copy without plotly's full template (~6 kB of JSON per figure, stored in 2 kB system attrs)."""
    lean = go.Figure(fig)
    grid = dict(gridcolor="#EBF0F8", zerolinecolor="#EBF0F8")
    lean.layout.template = go.layout.Template(
        layout=dict(paper_bgcolor="white", plot_bgcolor="white", xaxis=grid, yaxis=grid)
    )
    return lean
