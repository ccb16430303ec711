"""The Jinja2 environment of ``templates/``: the HTML page (autoescaped) and the plain-text
pieces shared with the optuna-dashboard note (``*.txt.j2``, ``*.md.j2``: not escaped).

The verdict's sentences (``verdict.txt.j2``) are rendered here, from Python, into plain
strings that the page then escapes like any other value. A page must not call those
macros itself: a macro takes the escaping mode of its caller, so called from the page it
would return its unescaped text marked safe.
"""

from __future__ import annotations

from typing import Any

import jinja2
import pandas as pd

from cmi_model.weighting import BASELINE_ARM, FAMILIES, NO_TUNING_ARM
from study import frozen
from study.report.analyse import MIN_PAIRS, Report, Verdict
from study.report.budget_figures import Match, trials_to_match
from study.report.studies import MOVED, Movement, arm_order, family_of
from study.report.style import count, num, p_value
from study.report.tradeoff_figures import TradeoffInfo, why_not_drawn
from study.subject_level import SKEW_SAFE_SUBJECTS

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("study.report", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.do"],
)
ENV.filters.update(num=num, p_value=p_value, count=count)
ENV.globals.update(MOVED=MOVED, MIN_PAIRS=MIN_PAIRS, FAMILIES=FAMILIES, SKEW_SAFE_SUBJECTS=SKEW_SAFE_SUBJECTS)


def sentence(name: str, *args: Any) -> str:
    """One macro of ``verdict.txt.j2`` as plain, unescaped text (empty when it has nothing to say)."""
    macro = getattr(ENV.get_template("verdict.txt.j2").module, name)
    return str.__str__(macro(*args)).strip()


def verdict_text(v: Verdict) -> dict[str, Any]:
    """The headline's sentences of one comparison, for the page and the dashboard note."""
    return {
        "lead": sentence("lead", v),
        "evidence": sentence("evidence", v),
        "effectively_fixed": [sentence("effectively_fixed", m) for m in v.effectively_fixed],
        "subjects": sentence("subjects", v),
        "variance": sentence("variance", v),
        "rules": sentence("rules", v),
        "fold_level": sentence("fold_level", v),
    }


def movement_text(m: Movement) -> str:
    return sentence("movement", m)


def holm_text(family: tuple[int, str] | None) -> str:
    return sentence("holm", *family) if family else ""


def tuning_text(curves: pd.DataFrame, verdicts: list[Verdict]) -> list[str]:
    """What tuning buys, per arm against the baseline arm: the trials the baseline's search needed to
    reach the arm's untuned score, the trials the arm's needed to reach the tuned baseline, and where
    the held-out verdict disagrees with these search scores."""
    arms = sorted(curves["arm"].unique(), key=arm_order) if len(curves) else []
    if BASELINE_ARM not in arms:
        return []
    said = []
    for arm in (a for a in arms if a not in (BASELINE_ARM, NO_TUNING_ARM)):
        for m in (
            trials_to_match(curves, BASELINE_ARM, arm, "untuned"),
            trials_to_match(curves, arm, BASELINE_ARM, "tuned"),
        ):
            if m is not None:
                said.append(match_text(m))
        if text := disagreement_text(curves, verdicts, arm):
            said.append(text)
    return said


def frozen_text(report: Report) -> list[str]:
    """Per learned loss-level arm: its frozen configuration (study.frozen) and where its rows are, or
    why it has none; one sentence for the gradient-level arms, which get none."""
    data, said = report.studies, []
    confirmed = data.confirm.arms if data.confirm is not None else []
    params = data.confirm.params if data.confirm is not None else {}
    arms = data.arm_names()
    asked = any(d.record.settings.get("study", {}).get("freeze_learned") for d in data.arms.values())
    freezable = [a for a in arms if frozen.freezable(a)]
    if freezable and not asked and not any(frozen.is_frozen(a) for a in confirmed):
        said.append(sentence("frozen_off", freezable))
        freezable = []
    for arm in freezable:
        name, m = frozen.label(arm), report.movements.get(arm)
        # Each outer fold freezes its own learned runs: their configurations, by outer fold.
        parts = [(k, p.confirm.params.get(name)) for k, p in data.outer if p.confirm is not None]
        parts = [(k, p) for k, p in parts if p is not None] or [(None, params.get(name, {}))]
        said.append(sentence("frozen", arm, name, name in confirmed, parts, m, data.confirm is not None))
    gradient = [a for a in arms if family_of(a) == "gradient-level"]
    if gradient:
        said.append(sentence("frozen_gradient", gradient))
    return [" ".join(s.split()) for s in said]


def match_text(m: Match) -> str:
    """How many trials one arm's search needed to reach another's untuned or tuned score."""
    return " ".join(sentence("match", m).split())


def disagreement_text(curves: pd.DataFrame, verdicts: list[Verdict], arm: str) -> str:
    """A sentence when the search's CV scores after the whole budget put `arm` on the other side
    of the baseline than the held-out verdict does; empty when they agree or either is undecided."""
    ends = (
        curves.sort_values("n").groupby(["arm", "outer_fold"])["expected_best"].last().groupby("arm").mean()
    )
    v = next((v for v in verdicts if {v.cmp.a, v.cmp.b} == {BASELINE_ARM, arm}), None)
    if v is None or v.cmp.primary is None or BASELINE_ARM not in ends or arm not in ends:
        return ""
    said = v.cmp.primary.verdict
    if said not in ("a better", "b better"):
        return ""
    held_out = v.cmp.b if said == "b better" else v.cmp.a
    searched = arm if ends[arm] > ends[BASELINE_ARM] else BASELINE_ARM
    return "" if held_out == searched else " ".join(sentence("disagreement", arm, searched, held_out).split())


def tradeoff_text(info: TradeoffInfo) -> str:
    """Which confirmed arms land beyond the baseline arm's front and which inside it, in one sentence."""
    return " ".join(sentence("tradeoff", info).split())


def tradeoff_note(data) -> str:
    """Why the trade-off figure is not drawn, in one line ("" when it is)."""
    why = why_not_drawn(data)
    return sentence("no_front", why[0], BASELINE_ARM, why[1]) if why else ""
