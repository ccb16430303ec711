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

from cmi_model.weighting import FAMILIES
from study.report.analyse import MIN_PAIRS, MOVED, Movement, Verdict
from study.report.style import count, num, p_value
from study.report.tradeoff_figures import TradeoffInfo
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


def tradeoff_text(info: TradeoffInfo) -> str:
    """Which confirmed arms land beyond the baseline arm's front and which inside it, in one sentence."""
    return " ".join(sentence("tradeoff", info).split())
