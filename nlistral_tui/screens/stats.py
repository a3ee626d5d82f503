"""The stats screen: counts by state, the thought model against gold, label balance, lengths, pace, the latest
training run's data map (cartography), and (once anyone has decided) agreement between reviewers."""
from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual_plotext import PlotextPlot

from nlistral_tui.data.review_stats import DataMap, ReviewStats, review_stats
from nlistral_tui.data.store import Store
from nlistral_tui.messages import AgreementComputed, StatsComputed
from pipeline.settings import Settings
from pipeline.views.cartography import NO_DYNAMICS, draw_scatter, summary_line
from pipeline.views.review import balance_table, pace_table
from pipeline.views.stats import render_stats
from pipeline.views.team import agreement_view


class StatsScreen(Screen[None]):
    """Read-only statistics, computed in a worker when the screen opens (r recomputes)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,S", "close", "back", id="stats.close"),
        Binding("r", "recompute", "recompute", id="stats.recompute"),
    ]

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.stats: ReviewStats | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="stats-body"):
            with Horizontal(id="stats-columns"):
                yield Static("Counting… (a big store takes a few seconds)", id="stats-tables")
                with Vertical(id="stats-side"):
                    yield Static(id="stats-review")
                    yield PlotextPlot(id="length-plot")
                    yield PlotextPlot(id="pace-plot")
                    yield Static(id="carto-note")
                    yield PlotextPlot(id="carto-plot")
            yield Static(id="stats-team")  # shown once a reviewer has decided
        yield Footer()

    def on_mount(self) -> None:
        self.action_recompute()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_recompute(self) -> None:
        self._compute()

    @work(thread=True, exclusive=True, group="stats", exit_on_error=False)
    def _compute(self) -> None:
        from pipeline.agreement import agreement_report

        db = self.store.db()
        thresholds = getattr(self.app, "settings", Settings()).cartography
        self.post_message(StatsComputed(review_stats(db, thresholds)))
        self.post_message(AgreementComputed(agreement_report(db)))  # reads the whole log: after the counts

    def on_agreement_computed(self, msg: AgreementComputed) -> None:
        team = self.query_one("#stats-team", Static)
        team.display = bool(msg.report.reviewers)
        team.update(agreement_view(msg.report))

    def on_stats_computed(self, msg: StatsComputed) -> None:
        self.stats = stats = msg.stats
        self.query_one("#stats-tables", Static).update(render_stats(stats.store))
        self.query_one("#stats-review", Static).update(Group(balance_table(stats.balance), pace_table(stats.pace)))
        lengths = self.query_one("#length-plot", PlotextPlot)
        buckets = stats.store["thought_length_words"]
        lengths.plt.clear_data()
        lengths.plt.clear_figure()
        lengths.plt.bar([b["bucket"] for b in buckets] or ["-"], [b["thoughts"] for b in buckets] or [0])
        lengths.plt.title("Thought length (words)")
        lengths.refresh()
        pace = self.query_one("#pace-plot", PlotextPlot)
        pace.display = bool(stats.pace.per_day)  # no decisions yet: the pace table says so, no empty axes
        pace.plt.clear_data()
        pace.plt.clear_figure()
        pace.plt.bar([d[5:] for d, _ in stats.pace.per_day] or ["-"], [n for _, n in stats.pace.per_day] or [0])
        pace.plt.title("Decisions per day (UTC)")
        pace.refresh()
        self._show_data_map(stats.data_map)

    def _show_data_map(self, found: DataMap | None) -> None:
        """The latest train run's variability x confidence scatter with its region counts, or how to get one."""
        plot = self.query_one("#carto-plot", PlotextPlot)
        plot.display = found is not None
        if found is None:
            self.query_one("#carto-note", Static).update(Text(NO_DYNAMICS))
            return
        counts = ", ".join(f"{region} {n:,}" for region, n in found.summary.regions.items())
        self.query_one("#carto-note", Static).update(Text(f"{summary_line(found.summary)}. Regions: {counts} "
                                                          f"(`nlistral cartography {found.summary.run_id}`)"))
        draw_scatter(plot.plt, found.rows, found.thresholds)
        plot.refresh()
