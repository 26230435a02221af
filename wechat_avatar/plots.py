"""What every HTML report shares: matplotlib settings for CJK text, and figures as inline SVG."""

from __future__ import annotations

import io
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

COLOR = "#07c160"
WIDTH = 5.8  # inches: about the width of a plot card, so the SVG shows at 1:1 on a laptop screen
# matplotlib measures text with its own fonts, which have no CJK glyphs; with svg.fonttype "none" the browser
# draws the text with the first of these families it has, so names stay readable.
RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,  # a chat called "$5 lunch $" is text, not mathtext
    "font.family": ["sans-serif"],
    "font.sans-serif": ["PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "WenQuanYi Micro Hei", "DejaVu Sans"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}  # no URLs, same bytes every run


def int_ticks() -> MaxNLocator:
    """Matplotlib's default tick spacing, but whole numbers only, even when the axis spans a single count."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins="auto", steps=[1, 2, 5, 10], integer=True, min_n_ticks=1)


def quantile(counts: Counter[int], q: float) -> int:
    """The smallest value with at least a fraction q of the weight at or below it."""
    target, seen = q * counts.total(), 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= target:
            return value
    return 0


def svg(fig: Figure, salt: str) -> str:
    """The figure as an inline <svg> element: ids salted per plot so several SVGs can share one page."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata=NO_METADATA)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # the XML prolog and DOCTYPE (which carries a URL) don't belong inline
