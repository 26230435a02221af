"""The dataset report: one self-contained HTML page with inline SVG plots, and the terminal summary."""

from __future__ import annotations

import math
import os
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from wechat_avatar.dataset.stats import DatasetStats
from wechat_avatar.plots import COLOR, RC, WIDTH, int_ticks, quantile, svg

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TEMPLATE = Path(__file__).with_name("report.html.j2")
TOP_CHATS = 20
MAX_BUBBLES = 10  # replies with more bubbles share the last bar
Plot = tuple["Figure | None", str]  # the figure (None: nothing to draw) and a caption or the reason it is missing


def write_report(stats: DatasetStats, path: Path) -> Path:
    """Render `stats` to one HTML file at `path` (written atomically) and return `path`."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["n"] = lambda value: f"{value:,}"
    env.filters["signed"] = lambda value: f"{value:+,}"
    html = env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        stats=stats,
        accounting=_accounting(stats),
        drops=_plots(stats, [("Drop reasons", _drops_plot)])[0],
        plots=_plots(stats, PLOTS),
        examples=[_example(sample) for sample in stats.examples],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path


NO_TEST_SPLIT = (
    "test split: empty (one conversation session, or dataset.test_ratio 0): eval cannot score replies it never "
    "trained on; a smaller dataset.session_gap_hours or more history gives it held-out sessions"
)


def summary_lines(stats: DatasetStats) -> list[str]:
    """The few lines the CLI prints after a build (plain text: no markup, no chat content)."""
    dropped = stats.drop_reasons.total()
    samples = (
        f"samples: {stats.samples['train']:,} train / {stats.samples['test']:,} test from {stats.sessions:,} sessions"
    )
    if stats.samples_dropped:
        samples += f"; {stats.samples_dropped.total():,} dropped in cleaning ({_top(stats.samples_dropped)})"
    messages = f"messages: {stats.used_messages:,} used, {dropped:,} dropped of {stats.store_messages:,} in chat.db"
    if dropped:
        messages += f" ({_top(stats.drop_reasons)})"
    pii = ", ".join(f"{kind} {n:,}" for kind, n in stats.pii_replaced.most_common()) or "none"
    lines = [samples, messages, f"PII replaced: {pii}", f"profane samples: {stats.profane_samples:,}"]
    if stats.held_out_fallback:
        lines.append(f"test split: no session fell under dataset.test_ratio, so the one nearest to it "
                     f"({stats.held_out_fallback:,} samples) is held out for eval")  # fmt: skip
    elif stats.samples["train"] and not stats.samples["test"]:
        lines.append(NO_TEST_SPLIT)
    if stats.accounted != stats.store_messages:
        lines.append(
            f"accounting mismatch: used + dropped = {stats.accounted:,} but chat.db holds {stats.store_messages:,}"
        )
    return lines


def _top(counts: Counter[str], n: int = 3) -> str:
    shown = ", ".join(f"{reason} {count:,}" for reason, count in counts.most_common(n))
    rest = len(counts) - n
    return f"{shown}, +{rest} more" if rest > 0 else shown


def _accounting(stats: DatasetStats) -> list[tuple[str, int, str]]:
    """Rows (label, messages, share of chat.db): used, then every drop reason, largest first."""
    rows = [("used in samples", stats.used_messages), *stats.drop_reasons.most_common()]
    return [(label, n, _share(n, stats.store_messages)) for label, n in rows]


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f} %" if total else ""


# --- examples ---------------------------------------------------------------------------------------------------


def _example(sample: dict[str, Any]) -> dict[str, Any]:
    """One sample as chat turns: user lines one per line, the reply's `<s>` bubbles separately."""
    turns = [
        {"role": str(m.get("role", "")), "parts": _parts(str(m.get("role", "")), str(m.get("content", "")))}
        for m in sample.get("messages", [])
    ]
    about = [f"{k}: {v}" for k, v in sample.items() if k != "messages" and isinstance(v, str | int | float)]
    return {"about": " · ".join(about), "turns": turns}


def _parts(role: str, content: str) -> list[str]:
    if role == "assistant":
        return [bubble for bubble in content.split("<s>") if bubble] or [""]
    if role == "user":
        return content.splitlines() or [""]
    return [content]


# --- plots ------------------------------------------------------------------------------------------------------


def _plots(stats: DatasetStats, specs: list[tuple[str, Callable[[DatasetStats], Plot]]]) -> list[dict[str, str]]:
    """Each plot as {title, svg, note}; svg is empty where there was nothing to draw."""
    import matplotlib

    out = []
    with matplotlib.rc_context(RC), warnings.catch_warnings():
        # the text is drawn by the browser, so matplotlib lacking CJK glyphs only affects its own measuring
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        for title, draw in specs:
            fig, note = draw(stats)
            out.append({"title": title, "svg": svg(fig, salt=title) if fig else "", "note": note})
    return out


def _chats_plot(stats: DatasetStats) -> Plot:
    top = stats.messages_per_chat.most_common(TOP_CHATS)
    if not top:
        return None, "No messages per chat were counted."
    rest = len(stats.messages_per_chat) - len(top)
    note = f"Top {len(top)} of {len(stats.messages_per_chat):,} chats." if rest > 0 else ""
    return _barh(top, "messages"), note


def _categories_plot(stats: DatasetStats) -> Plot:
    if not stats.messages_per_category:
        return None, "No message types were counted."
    return _barh(stats.messages_per_category.most_common(), "messages"), ""


def _drops_plot(stats: DatasetStats) -> Plot:
    if not stats.drop_reasons:
        return None, "No message was dropped."
    return _barh(stats.drop_reasons.most_common(), "messages dropped"), ""


def _hours_plot(stats: DatasetStats) -> Plot:
    if not any(stats.activity_by_hour):
        return None, "No message times were counted."
    return _bars([str(h) for h in range(24)], list(stats.activity_by_hour), "hour of day (local time)"), ""


def _bubbles_plot(stats: DatasetStats) -> Plot:
    if not stats.reply_bubbles:
        return None, "No replies were written."
    clipped = Counter({min(n, MAX_BUBBLES): 0 for n in stats.reply_bubbles})
    for n, count in stats.reply_bubbles.items():
        clipped[min(n, MAX_BUBBLES)] += count
    labels = [f"{n}+" if n == MAX_BUBBLES else str(n) for n in range(1, max(clipped) + 1)]
    return _bars(labels, [clipped[n] for n in range(1, max(clipped) + 1)], "bubbles (<s>-separated) per reply"), ""


def _reply_chars_plot(stats: DatasetStats) -> Plot:
    if not stats.reply_chars:
        return None, "No replies were written."
    return _hist(stats.reply_chars, "characters per reply (<s> excluded)")


def _tokens_plot(stats: DatasetStats) -> Plot:
    if not stats.token_lengths:
        return None, "No token lengths were measured."
    fig, note = _hist(Counter(stats.token_lengths), f"tokens per sample ({stats.tokenizer or 'unknown tokenizer'})")
    return fig, f"Samples measured: {len(stats.token_lengths):,}. {note}"


PLOTS: list[tuple[str, Callable[[DatasetStats], Plot]]] = [
    ("Messages per chat", _chats_plot),
    ("Messages per type", _categories_plot),
    ("Activity by hour of day", _hours_plot),
    ("Bubbles per reply", _bubbles_plot),
    ("Reply length", _reply_chars_plot),
    ("Tokens per sample", _tokens_plot),
]


def _barh(rows: list[tuple[str, int]], xlabel: str) -> Figure:
    """Horizontal bars, largest on top, with the count at each bar's end."""
    from matplotlib.figure import Figure

    labels = [_short(label) for label, _ in rows]
    height = 0.55 + 0.2 * len(rows)
    fig = Figure(figsize=(WIDTH, height))
    # matplotlib can't measure CJK it has no glyphs for, so the margin is sized from the browser's likely widths
    left = min(max(_text_inches(label) for label in labels) + 0.2, 2.6)
    fig.subplots_adjust(left=left / WIDTH, right=0.93, bottom=0.42 / height, top=1 - 0.08 / height)
    ax = fig.subplots()
    bars = ax.barh(range(len(rows)), [n for _, n in rows], color=COLOR)
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[f"{n:,}" for _, n in rows], padding=2, fontsize=8)
    ax.set_xlim(0, max(n for _, n in rows) * 1.12 or 1)
    ax.margins(y=0.02)
    ax.xaxis.set_major_locator(int_ticks())
    ax.set_xlabel(xlabel)
    return fig


def _bars(labels: list[str], values: list[int], xlabel: str) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, 2.4), layout="constrained")
    ax = fig.subplots()
    ax.bar(labels, values, color=COLOR)
    _label(ax, xlabel)
    return fig


def _hist(counts: Counter[int], xlabel: str) -> Plot:
    """A histogram of integer values given as value -> count; the long tail past the 99th percentile is folded
    into the last bar so the bulk stays readable."""
    from matplotlib.figure import Figure

    cap = quantile(counts, 0.99)
    low = min(counts)
    width = max(1, math.ceil((cap - low + 1) / 30))
    folded: Counter[int] = Counter()
    for value, n in counts.items():
        folded[min(value, cap)] += n
    fig = Figure(figsize=(WIDTH, 2.4), layout="constrained")
    ax = fig.subplots()
    # at least 10 bins, so one distinct value draws as a bar on a scale, not as a full-width block
    edges = [low + i * width - 0.5 for i in range(max((cap - low) // width + 2, 11))]
    ax.hist(list(folded), bins=edges, weights=list(folded.values()), color=COLOR)
    ax.xaxis.set_major_locator(int_ticks())
    _label(ax, xlabel)
    note = f"Median {quantile(counts, 0.5):,}, 95th percentile {quantile(counts, 0.95):,}, max {max(counts):,}."
    if max(counts) > cap:
        note += f" The last bar also holds everything above {cap:,}."
    return fig, note


def _label(ax: Axes, xlabel: str) -> None:

    # counts: no 0.2-message ticks when they are small
    ax.yaxis.set_major_locator(int_ticks())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")


def _short(label: str, limit: float = 20) -> str:
    """Cut a label to about `limit` ems (a CJK character is one em, a Latin one about half)."""
    out, ems = "", 0.0
    for char in label:
        ems += _ems(char)
        if ems > limit:
            return out + "…"
        out += char
    return out or "(no name)"


def _text_inches(label: str, size: float = 9) -> float:
    return sum(_ems(char) for char in label) * size / 72


def _ems(char: str) -> float:
    return 1.0 if unicodedata.east_asian_width(char) in "WF" else 0.6
