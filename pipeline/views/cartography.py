"""What `nlistral cartography` and the stats screen show of a run's training dynamics (db/cartography.py)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from db.cartography import REGIONS, DynamicsSummary, ExampleDynamics, Thresholds

MEANINGS = {
    "easy": "the model learns gold early and keeps it (high confidence, low variability)",
    "ambiguous": "the model keeps changing its mind about gold (high variability)",
    "hard_to_learn": "gold stays unlikely throughout (low confidence): often a mislabel",
}
# A marker and a colour per region: the markers alone tell them apart (no colour, or colour-blind).
MARKERS = {"easy": ("dot", "green"), "ambiguous": ("+", "yellow"), "hard_to_learn": ("x", "red")}
PLOT_POINTS = 4000  # points drawn at most (evenly spread over the run's examples): a terminal has fewer cells
NO_DYNAMICS = ("No training dynamics yet: train with `nlistral train` (sft or label-only, cartography on by "
               "default), then `nlistral cartography` shows the regions.")


def thresholds_line(thresholds: Thresholds, source: str) -> str:
    """The region rule with its numbers, and where they come from."""
    return (f"ambiguous: variability >= {thresholds.ambiguous_variability:g}; otherwise hard_to_learn: confidence < "
            f"{thresholds.hard_confidence:g}; otherwise easy (thresholds from {source})")


def summary_line(summary: DynamicsSummary) -> str:
    """Run, method, status, checkpoints and examples in one line."""
    return (f"Run {summary.run_id} ({summary.method or 'train'}, {summary.status}): P(gold label) of "
            f"{summary.examples:,} training examples at {summary.checkpoints} checkpoint(s)")


def regions_table(summary: DynamicsSummary) -> Table:
    """The examples in each region, with its share and meaning."""
    table = Table(title="Regions", title_justify="left")
    table.add_column("region", no_wrap=True)
    table.add_column("examples", justify="right")
    table.add_column("share", justify="right")
    table.add_column("meaning", overflow="fold")
    for region in REGIONS:
        n = summary.regions[region]
        share = f"{n / summary.examples:.0%}" if summary.examples else "-"
        table.add_row(Text(region, style=MARKERS[region][1]), f"{n:,}", share, MEANINGS[region])
    return table


def examples_table(rows: Sequence[ExampleDynamics], title: str) -> Table:
    """Examples with their dynamics and the pair's hypothesis (model text shown literally)."""
    table = Table(title=title, title_justify="left")
    for name in ("id", "label", "confidence", "variability", "correctness"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("hypothesis", overflow="fold")
    for r in rows:
        table.add_row(str(r.example_id), str(r.gold_label), f"{r.confidence:.3f}", f"{r.variability:.3f}",
                      f"{r.correctness:.2f}", Text(_clip(r.hypothesis)))
    return table


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def draw_scatter(plt: Any, rows: Sequence[ExampleDynamics], thresholds: Thresholds) -> None:
    """Variability (x) against confidence (y), one colour per region, the thresholds as lines, on a plotext
    figure (the plotext module, or a textual-plotext widget's plt)."""
    plt.clear_data()
    plt.clear_figure()
    step = max(1, -(-len(rows) // PLOT_POINTS))
    shown = rows[::step]
    for region in REGIONS:
        points = [r for r in shown if r.region == region]
        if points:
            marker, color = MARKERS[region]
            plt.scatter([r.variability for r in points], [r.confidence for r in points], marker=marker, color=color,
                        label=f"{region} {sum(r.region == region for r in rows):,}")
    plt.vline(thresholds.ambiguous_variability, "gray")
    plt.hline(thresholds.hard_confidence, "gray")
    plt.xlim(0, 0.5)  # a population standard deviation of values in [0, 1] is at most 0.5
    plt.ylim(0, 1)
    plt.xlabel("variability")
    plt.ylabel("confidence")
    plt.title("Data map: P(gold label) across checkpoints" + (f" (1 example in {step})" if step > 1 else ""))


def scatter_text(rows: Sequence[ExampleDynamics], thresholds: Thresholds, width: int, height: int = 20) -> Text:
    """The data map as text for a terminal of this width (plotext)."""
    import plotext

    draw_scatter(plotext, rows, thresholds)
    plotext.plotsize(max(40, width), height)
    plotext.theme("clear")
    return Text.from_ansi(plotext.build())


def render_cartography(summary: DynamicsSummary, rows: Sequence[ExampleDynamics],
                       hardest: Sequence[ExampleDynamics], thresholds: Thresholds, source: str,
                       width: int) -> RenderableType:
    """Everything `nlistral cartography` prints: the run, the thresholds, the regions, the map, the suspects."""
    parts: list[RenderableType] = [Text(summary_line(summary)), Text(thresholds_line(thresholds, source)),
                                   regions_table(summary), scatter_text(rows, thresholds, width)]
    if hardest:
        parts.append(examples_table(hardest, "Most confidently hard to learn (lowest confidence, then lowest "
                                             "variability: the classic mislabel signal)"))
    else:
        parts.append(Text("No hard-to-learn examples in this run."))
    return Group(*parts)
