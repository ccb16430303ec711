"""What every figure and table shares: arm and term colours, the plotly layout, hover labels,
and number formats (the page's Jinja filters, the figures' hover texts, the dashboard note).

Plotly renders tags in hover texts, so strings from the storage (arm and parameter names,
fail reasons) are HTML-escaped before they go into one (:func:`esc`, :func:`hover_extra`).
"""

from __future__ import annotations

import html
import math
import re

from cmi_model.weighting import FAMILIES, NO_TUNING_ARM, SCHEMES
from study.records import source_arm

LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=30, t=60, b=50), font=dict(size=12))
UNKNOWN_ARM_COLOR = "#7F7F7F"  # an arm this version does not know (a storage written by another one)
NO_TUNING = f"{NO_TUNING_ARM}: what no tuning gives"  # the label of the no-tuning arm's reference lines
# Loss terms, in panel order, and their colours in the weights figure (never an arm's colour).
TERMS: tuple[str, ...] = ("multiclass", "binary", "nine_class", "kl")
TERM_COLORS = {"multiclass": "#1B9E77", "binary": "#D95F02", "nine_class": "#7570B3", "kl": "#E7298A"}
_OTHER_TERMS = ("#66A61E", "#E6AB02", "#A6761D", "#666666")
GREY = "#555555"
# Marker symbols of the families, in FAMILIES order (an unknown family gets the last one).
_FAMILY_SYMBOLS = ("square", "circle", "diamond", "triangle-up", "pentagon", "star")

esc = html.escape


def arm_color(arm: str) -> str:
    """An arm's colour; a frozen configuration (fixed@ARM) takes its learned arm's."""
    scheme = SCHEMES.get(source_arm(arm) or arm)
    return scheme.color if scheme is not None else UNKNOWN_ARM_COLOR


def family_symbol(family: str) -> str:
    """The marker symbol of an arm family (``FAMILIES`` order), the same in every figure."""
    i = FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)
    return _FAMILY_SYMBOLS[min(i, len(_FAMILY_SYMBOLS) - 1)]


def term_color(term: str, terms: list[str]) -> str:
    if term in TERM_COLORS:
        return TERM_COLORS[term]
    others = [t for t in terms if t not in TERM_COLORS]
    return _OTHER_TERMS[others.index(term) % len(_OTHER_TERMS)] if term in others else GREY


def hover_extra(name: str) -> str:
    """Hover-box side label naming an arm."""
    return f"<extra>{esc(name)}</extra>"


# ----------------------------------------------------------------------------- numbers


def num(x: float | None, digits: int = 4, signed: bool = False) -> str:
    """``x`` with ``digits`` decimals (``+`` sign if ``signed``); ``—`` for a missing or non-finite value."""
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def p_value(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def seconds(s: float) -> str:
    if not math.isfinite(s) or s <= 0:
        return "0 s"
    if s < 90:
        return f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def count(n: int | None) -> str:
    """A count with thousands separators; ``?`` when unknown."""
    return f"{n:,}" if n is not None else "?"


def html_id(key: str) -> str:
    """A figure key as an HTML id (letters, digits, "-" and "_"): a frozen arm's "@" is not one."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", key)
