"""Number formatting shared by the page (as Jinja filters), the figures' hover texts and the dashboard note."""

from __future__ import annotations

import math


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
