"""The eval report: metrics.json as one self-contained HTML page with inline SVG plots, runs side by side.

Plots and styling follow the dataset report (`dataset/report.py`: matplotlib drawn to inline SVG,
text left to the browser so CJK shows). Everything shown has already had its secrets masked by
run.py; this module only draws.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from wechat_avatar.eval.metrics import BUBBLE, MIN_REPEATS
from wechat_avatar.plots import RC, WIDTH, int_ticks, quantile, svg

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TEMPLATE = Path(__file__).with_name("report.html.j2")
REAL = "#8c959f"  # the person's own replies: grey, so the runs' colours stand out against it
RUN_COLORS = ("#07c160", "#1f6feb", "#bf8700", "#8250df", "#cf222e", "#1b7c83")
MAX_BUBBLES = 5  # replies with more bubbles share the last bar
SCORES = (("bleu4", "BLEU-4"), ("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"),
          ("distinct1", "distinct-1"), ("distinct2", "distinct-2"))  # fmt: skip
STYLE_ROWS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("bubbles_per_reply", "bubbles per reply", lambda v: f"{v:.2f}"),
    ("chars_per_bubble", "characters per bubble", lambda v: f"{v:.1f}"),
    ("chars_per_reply", "characters per reply", lambda v: f"{v:.1f}"),
    ("sticker_emoji_rate", "replies with a sticker or emoji", lambda v: f"{100 * v:.1f} %"),
)

Plot = tuple["Figure | None", str]


def write_report(result: dict[str, Any], examples: Sequence[dict[str, Any]], path: Path) -> Path:
    """Render metrics.json's `result` and the side-by-side `examples` to `path` (atomically); return it."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["bubbles"] = lambda reply: [b for b in (p.strip() for p in reply.split(BUBBLE)) if b]
    env.filters["pct"] = lambda share: f"{100 * share:.1f} %"
    runs = result["runs"]
    colors = {run["label"]: RUN_COLORS[i % len(RUN_COLORS)] for i, run in enumerate(runs)}
    html = env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        result=result,
        runs=runs,
        colors=colors,
        summary=summary_table(result),
        style_rows=_style_rows(result),
        collapse=_collapse_rows(result),
        min_repeats=MIN_REPEATS,
        hits=[(run["label"], hit) for run in runs for hit in run["privacy"]["hits"]],
        plots=_plots(result, colors),
        examples=[_turns(example) for example in examples],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path


def summary_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The main numbers, one row per run (the CLI prints this table too)."""
    headers = ["run", "perplexity", *(title for _, title in SCORES), "style gap", "rude", "hostile",
               "rude (provoked)", "hostile (provoked)", "top reply ×", "privacy hits"]  # fmt: skip
    rows = []
    for run in result["runs"]:
        m, privacy = run["metrics"], run["privacy"]
        ppl = m.get("perplexity")
        gap = run["style_gap"].get("mean_abs")
        leaks = privacy["test_leaking"] + privacy["probe_leaking"]
        rows.append([
            run["label"] + ("" if run.get("comparable", True) else " (other samples)"),
            f"{ppl:.2f}" if ppl is not None else "–",
            *(f"{m[key]:.2f}" for key, _ in SCORES),
            f"{100 * gap:.0f} %" if gap is not None else "–",
            f"{100 * run['civility']['rude_share']:.1f} %",
            f"{100 * run['civility'].get('hostile_share', 0.0):.1f} %",  # .get: metrics.json from before it
            _provoked_cell(run, "rude_share"),
            _provoked_cell(run, "hostile_share"),
            _overproduced_cell(run),
            f"{leaks} / {privacy['test_replies'] + privacy['probe_replies']}",
        ])  # fmt: skip
    return headers, rows


def _provoked_cell(run: dict[str, Any], share: str) -> str:
    slice_ = run.get("provocation")  # absent from evals written before the slice (or the hostile measure) existed
    return f"{100 * slice_[share]:.1f} %" if slice_ and slice_["replies"] and share in slice_ else "–"


def _overproduced_cell(run: dict[str, Any]) -> str:
    worst = (run.get("overproduction") or {}).get("worst")
    return f"{worst['ratio']:.1f}" if worst else "–"


def summary_by_metric(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """`summary_table` turned: a row per metric, a column per run (fits a terminal for a few runs)."""
    headers, rows = summary_table(result)
    return ["", *(row[0] for row in rows)], [[title, *(row[i] for row in rows)] for i, title in enumerate(headers)
                                               if i]  # fmt: skip


def _style_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the style table: the real value, then each run's value and its relative difference."""
    real = result["real"]["style"]
    rows = []
    for key, title, show in STYLE_ROWS:
        cells = []
        for run in result["runs"]:
            gap = run["style_gap"].get(key)
            shown = f"{100 * gap:+.0f} %" if gap is not None else ""
            cells.append({"value": show(run["style"][key]), "gap": shown})
        rows.append({"title": title, "real": show(real[key]), "cells": cells})
    return rows


def _collapse_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per run: its most over-produced reply, and the rude share on the provocation slice."""
    rows = []
    for run in result["runs"]:
        found = run.get("overproduction") or {}
        slice_ = run.get("provocation") or {}
        rows.append({"label": run["label"], "worst": found.get("worst"), "top": found.get("top", []),
                     "provoked": slice_ if slice_.get("replies") else None})  # fmt: skip
    return rows


def _turns(example: dict[str, Any]) -> dict[str, Any]:
    """A sample's context as chat turns (no system prompt: it is the same everywhere)."""
    turns = []
    for m in example["context"]:
        if m["role"] == "user":
            turns.append({"role": "user", "parts": m["content"].splitlines() or [""]})
        elif m["role"] == "assistant":
            turns.append({"role": "assistant", "parts": [b for b in m["content"].split(BUBBLE) if b] or [""]})
    return {**example, "turns": turns, "key": str(example["index"])}


# --- plots ------------------------------------------------------------------------------------------------------


def _plots(result: dict[str, Any], colors: dict[str, str]) -> list[dict[str, str]]:
    import matplotlib

    specs: list[tuple[str, Callable[[dict[str, Any], dict[str, str]], Plot]]] = [
        ("Scores per run", _scores_plot),
        ("Perplexity of the real replies", _perplexity_plot),
        ("Reply length: real vs generated", _lengths_plot),
        ("Bubbles per reply", _bubbles_plot),
        ("Rude replies", _civility_plot),
        ("Distinct n-grams: real vs generated", _distinct_plot),
        ("Knowledge probes", _knowledge_plot),
        ("Who said it", _whosaid_plot),
    ]
    out = []
    with matplotlib.rc_context(RC), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")  # the browser draws text
        for title, draw in specs:
            fig, note = draw(result, colors)
            out.append({"title": title, "svg": svg(fig, salt=title) if fig else "", "note": note})
    return out


def _scores_plot(result: dict[str, Any], colors: dict[str, str]) -> Plot:
    runs = result["runs"]
    if not runs:
        return None, "No runs."
    groups = [(title, [run["metrics"][key] for run in runs]) for key, title in SCORES]
    fig = _grouped([g for g, _ in groups], [(run["label"], colors[run["label"]]) for run in runs],
                   [[values[i] for _, values in groups] for i in range(len(runs))], "score (0–100)")  # fmt: skip
    return fig, "BLEU-4 and ROUGE against the real reply (jieba tokens); distinct-n: unique / all n-grams."


def _perplexity_plot(result: dict[str, Any], colors: dict[str, str]) -> Plot:
    rows = [(run["label"], colors[run["label"]], run["metrics"].get("perplexity")) for run in result["runs"]]
    rows = [(label, color, ppl) for label, color, ppl in rows if ppl is not None and math.isfinite(ppl)]
    if not rows:
        return None, "No run computed a perplexity."
    fig = _hbars(rows, "perplexity (lower: the real replies surprise the model less)", "{:.2f}")
    return fig, "Loss on the real reply's tokens only, exp of the mean per token."


def _lengths_plot(result: dict[str, Any], colors: dict[str, str]) -> Plot:
    from matplotlib.figure import Figure

    series = [("real", REAL, _counter(result["real"]["style"]["lengths"]))]
    series += [(run["label"], colors[run["label"]], _counter(run["style"]["lengths"])) for run in result["runs"]]
    every = sum((c for _, _, c in series), Counter[int]())
    if not every:
        return None, "No replies."
    cap = max(quantile(every, 0.99), 1)
    width = max(1, math.ceil((cap + 1) / 25))
    edges = [i * width - 0.5 for i in range(cap // width + 2)]
    fig = Figure(figsize=(WIDTH, 2.6), layout="constrained")
    ax = fig.subplots()
    for label, color, counts in series:
        if not counts:
            continue
        values = [min(v, cap) for v in counts]  # the long tail folds into the last bin
        weights = [n / counts.total() for n in counts.values()]
        if label == "real":
            ax.hist(values, bins=edges, weights=weights, color=color, alpha=0.45, label=label)
        else:
            ax.hist(values, bins=edges, weights=weights, histtype="step", linewidth=1.6, color=color, label=label)
    ax.xaxis.set_major_locator(int_ticks())
    ax.set_xlabel("characters per reply (<s> excluded)")
    ax.set_ylabel("share of replies")
    ax.legend(fontsize=8, frameon=False)
    note = f"The last bin also holds everything above {cap:,}." if max(every) > cap else ""
    return fig, note


def _bubbles_plot(result: dict[str, Any], colors: dict[str, str]) -> Plot:
    series = [("real", REAL, _counter(result["real"]["style"]["bubble_counts"]))]
    series += [(run["label"], colors[run["label"]], _counter(run["style"]["bubble_counts"])) for run in result["runs"]]
    if not any(c for _, _, c in series):
        return None, "No replies."
    groups = [str(n) for n in range(MAX_BUBBLES)] + [f"{MAX_BUBBLES}+"]
    shares = []
    for _, _, counts in series:
        folded = Counter({min(n, MAX_BUBBLES): 0 for n in range(MAX_BUBBLES + 1)})
        for n, k in counts.items():
            folded[min(n, MAX_BUBBLES)] += k
        shares.append([folded[n] / (counts.total() or 1) for n in range(MAX_BUBBLES + 1)])
    fig = _grouped(groups, [(label, color) for label, color, _ in series], shares, "share of replies")
    return fig, "0 bubbles: an empty reply."


def _civility_plot(result: dict[str, Any], colors: dict[str, str]) -> Plot:
    rows = [("real", REAL, 100 * result["real"]["civility"]["rude_share"])]
    rows += [(run["label"], colors[run["label"]], 100 * run["civility"]["rude_share"]) for run in result["runs"]]
    fig = _hbars(rows, "% of replies that are rude", "{:.1f} %")
    return fig, "By the dataset's profanity lexicon (dataset/clean.py), per bubble."


def _distinct_plot(result: dict[str, Any], colors: dict[str, str]) -> Plot:
    real = result["real"].get("distinct")
    series = ([("real", REAL)] if real else []) + [(run["label"], colors[run["label"]]) for run in result["runs"]]
    values = ([[real["distinct1"], real["distinct2"]]] if real else []) + [
        [run["metrics"]["distinct1"], run["metrics"]["distinct2"]] for run in result["runs"]
    ]
    if not values:
        return None, "No replies."
    fig = _grouped(["distinct-1", "distinct-2"], series, values, "unique / all n-grams (0–100)")
    return fig, "A model that collapses onto a few safe replies falls well below the person's own variety."


def _knowledge_plot(result: dict[str, Any], colors: dict[str, str]) -> Plot:
    runs = [run for run in result["runs"] if run.get("knowledge")]
    if not runs:
        return None, "No knowledge probes: `eval --probes EXPORT/synth.json` asks the synthetic persona's."
    groups = ["recall, no memory", "recall, memory", "generic, no memory", "generic, memory"]
    values = []
    for run in runs:
        k = run["knowledge"]
        values.append([(k.get(how) or {}).get(key) or 0.0 for key in ("recall", "generic")
                       for how in ("without_memory", "with_memory")])  # fmt: skip
    fig = _grouped(groups, [(run["label"], colors[run["label"]]) for run in runs], values, "% of probe replies")
    probes = runs[0]["knowledge"]["without_memory"]["probes"]
    memory = "" if runs[0]["knowledge"].get("with_memory") else " No memory index: no bars with memory."
    return fig, (f"{probes} probes: recall states the right fact; generic says nothing (好的, 我先睡会, a lone "
                 f"sticker …; eval/knowledge.py).{memory}")  # fmt: skip


def _whosaid_plot(result: dict[str, Any], colors: dict[str, str]) -> Plot:
    judge = result.get("whosaid") or {}
    if judge.get("real") is None:
        return None, f"No who-said-it test: {judge.get('skipped', 'no discriminator')}."
    rows = [("your held-out replies", REAL, judge["real"])]
    if judge.get("friends") is not None:
        rows.append(("friends' held-out lines", REAL, judge["friends"]))
    rows += [(f"{name}'s replies", REAL, o["share"]) for name, o in judge.get("others", {}).items()
             if o.get("share") is not None]  # fmt: skip
    rows += [(run["label"], colors[run["label"]], run["whosaid"]) for run in result["runs"]
             if run.get("whosaid") is not None]  # fmt: skip
    fig = _hbars(rows, "% read as yours by the discriminator", "{:.0f} %")
    t = judge["trained_on"]
    return fig, (f"Character n-grams, logistic regression, trained on {t['person']} of your replies and "
                 f"{t['friends']} friends' lines (train split). Your own replies are the ceiling, friends' "
                 "the floor; other people (dataset --as CONTACT) should score low.")  # fmt: skip


def _hbars(rows: list[tuple[str, str, float]], xlabel: str, fmt: str) -> Figure:
    """One horizontal bar per (label, colour, value), the value at its end."""
    from matplotlib.figure import Figure

    height = 0.7 + 0.3 * len(rows)
    fig = Figure(figsize=(WIDTH, height), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh(range(len(rows)), [v for _, _, v in rows], color=[c for _, c, _ in rows])
    ax.set_yticks(range(len(rows)), [label for label, _, _ in rows])
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[fmt.format(v) for _, _, v in rows], padding=2, fontsize=8)
    ax.set_xlim(0, max(v for _, _, v in rows) * 1.15 or 1)
    ax.set_xlabel(xlabel)
    return fig


def _grouped(groups: list[str], series: list[tuple[str, str]], values: list[list[float]], ylabel: str) -> Figure:
    """Bars in groups: one bar per series (run) in every group (metric), with a legend."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, 2.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(len(series), 1)
    for i, ((label, color), row) in enumerate(zip(series, values, strict=True)):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, row, width=width, color=color, label=label)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    if max((v for row in values for v in row), default=0) == 0:
        ax.set_ylim(0, 1)  # all zero: an axis rather than matplotlib's ±0.05
    ax.legend(fontsize=8, frameon=False, ncols=min(len(series), 4))
    _ticks(ax)
    return fig


def _ticks(ax: Axes) -> None:
    if ax.get_ylim()[1] >= 5:  # whole-number ticks on counts and scores, not on shares
        ax.yaxis.set_major_locator(int_ticks())


def _counter(hist: dict[str, int] | dict[int, int]) -> Counter[int]:
    """A histogram read back from JSON, where the keys became strings."""
    return Counter({int(k): int(v) for k, v in hist.items()})
