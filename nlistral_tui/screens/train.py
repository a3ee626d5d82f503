"""The training screen: pick a preset and an export, run `nlistral train` as a subprocess, watch its log and loss."""
from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from sqlite_utils import Database
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Label, Log, OptionList, Static
from textual.widgets.option_list import Option
from textual_plotext import PlotextPlot

from db.runs import list_runs
from exports import list_exports
from nlistral_tui.data.store import Store
from nlistral_tui.messages import TrainDiffLoaded, TrainExited, TrainListsLoaded, TrainOutput
from nlistral_tui.text import literal
from pipeline.train_extra import missing_message, missing_modules
from pipeline.views.train import runs_table

TAIL_S = 0.5
DIFF_DELAY_S = 0.3  # the exports list's highlight rests this long before the export is compared
LOG_MARK = "logging to "


def train_command(preset: str, export_id: int, db_path: Path, output_dir: str) -> list[str]:
    """`nlistral train` with this preset and export, run by this interpreter (no PATH lookup)."""
    entry = "import sys; from pipeline.cli import main; sys.argv[0] = 'nlistral'; main()"
    command = [sys.executable, "-c", entry, "train", "--config", preset, "--set", f"data=export:{export_id}",
               "--db", str(db_path)]
    return command + (["--set", f"output_dir={output_dir}"] if output_dir else [])


def presets() -> list[str]:
    """The training presets shipped in configs/ (empty when the training extra is not installed)."""
    try:
        from pipeline.train.config import list_presets
    except ImportError:
        return []
    return list_presets()


class TrainScreen(Screen[None]):
    """Start a run (ctrl+s), stream its output and loss curve, cancel it (ctrl+x: stop after this step)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "start", "start", id="train.start"),
        Binding("ctrl+x", "cancel", "cancel run", id="train.cancel"),
        Binding("escape", "close", "back", id="train.close"),
    ]

    def __init__(self, store: Store, command: Callable[[str, int, Path, str], list[str]] = train_command) -> None:
        super().__init__()
        self.store, self.command = store, command
        self.process: asyncio.subprocess.Process | None = None
        self.log_path: Path | None = None
        self.losses: dict[str, list[tuple[int, float]]] = {"loss": [], "eval_loss": []}
        self.exit_code: int | None = None
        self._offset = 0
        self._cancels = 0
        self._diffs: dict[tuple[str | None, int], str] = {}  # (last trained export, export id) -> the line
        self._diff_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="train-body"):
            with Vertical(id="train-form"):
                yield Label("Preset (configs/)")
                yield OptionList(*(Option(Content(p), id=p) for p in presets()), id="train-presets", compact=True)
                yield Label("Export (newest first)")
                yield OptionList(id="train-exports", compact=True)
                yield Static(id="train-diff")
                yield Label("Output folder (empty: runs/PRESET-TIME)")
                yield Input(id="train-out", compact=True)
                yield Static(id="train-runs")
            with Vertical(id="train-run"):
                yield Static("No run started. Pick a preset and an export, then ctrl+s.", id="train-status")
                yield PlotextPlot(id="train-loss")
                yield Log(id="train-log", highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(TAIL_S, self._tail)
        if missing := missing_modules():
            self._status(missing_message("Training", missing))

    def on_screen_resume(self) -> None:
        self._load_lists()  # each time it is shown: the screen stays installed while exports are written

    def on_unmount(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)  # stop at the next step with a checkpoint (--resume continues)

    # ------------------------------------------------------------- actions
    def action_close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.notify("A run is in progress; it goes on while you review (come back with T).")
        self.app.pop_screen()

    def action_start(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.notify("A run is already in progress; cancel it first (ctrl+x).", severity="warning")
            return
        if missing := missing_modules():
            self.notify(missing_message("Training", missing), severity="error", timeout=20)
            return
        presets_list = self.query_one("#train-presets", OptionList)
        exports_list = self.query_one("#train-exports", OptionList)
        if presets_list.highlighted is None or exports_list.highlighted is None:
            self.notify("Choose a preset and an export first (an export is written on the export screen, E).",
                        severity="warning")
            return
        preset = presets_list.get_option_at_index(presets_list.highlighted).id or ""
        export_id = int(exports_list.get_option_at_index(exports_list.highlighted).id or 0)
        out = self.query_one("#train-out", Input).value.strip() or \
            f"runs/{preset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        self.query_one("#train-log", Log).clear()
        self.losses = {"loss": [], "eval_loss": []}
        self.log_path, self._offset, self._cancels, self.exit_code = None, 0, 0, None
        self._status("Starting…")
        self._run(self.command(preset, export_id, self.store.path, out))

    def action_cancel(self) -> None:
        if self.process is None or self.process.returncode is not None:
            self.notify("No run is in progress.", severity="warning")
            return
        self._cancels += 1
        if self._cancels == 1:
            self.process.send_signal(signal.SIGTERM)
            self.notify("Stopping after the current step (a checkpoint is kept); ctrl+x again stops at once.")
        else:
            self.process.kill()

    # ------------------------------------------------------------- workers
    @work(thread=True, exclusive=True, group="train-lists", exit_on_error=False)
    def _load_lists(self) -> None:
        db = self.store.db()
        self.post_message(TrainListsLoaded(list_exports(db), list_runs(db, kind="train")))

    def on_train_lists_loaded(self, msg: TrainListsLoaded) -> None:
        exports, runs = msg.exports, msg.runs
        box = self.query_one("#train-exports", OptionList)
        highlighted = box.highlighted
        box.clear_options()
        box.add_options([Option(Content(f"#{e.id} {e.kind} {e.rule} · {e.counts.get('rows', 0):,} rows · {e.path}"),
                                id=str(e.id)) for e in exports])
        if exports:
            box.highlighted = highlighted if highlighted is not None and highlighted < len(exports) else 0
        else:
            box.add_option(Option(Content("no exports yet: write one on the export screen (E)"), disabled=True))
        presets_list = self.query_one("#train-presets", OptionList)
        if presets_list.option_count and presets_list.highlighted is None:
            presets_list.highlighted = 0
        self.query_one("#train-runs", Static).update(runs_table(runs))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        """Compare the highlighted export once the highlight rests (DIFF_DELAY_S): each comparison reads both
        files, so arrowing through the list starts none."""
        if event.option_list.id == "train-exports" and event.option.id:
            export_id = int(event.option.id)
            if self._diff_timer is not None:
                self._diff_timer.stop()
            self.query_one("#train-diff", Static).update("")
            self._diff_timer = self.set_timer(DIFF_DELAY_S, lambda: self._load_diff(export_id))

    @work(thread=True, exclusive=True, group="train-diff", exit_on_error=False)
    def _load_diff(self, export_id: int) -> None:
        """What this export changes against the one the last completed training run used (pipeline.dataset_diff);
        each pair is compared once per screen."""
        from pipeline.dataset_diff import last_trained_export

        db = self.store.db()
        key = (last_trained_export(db), export_id)
        if key not in self._diffs:
            self._diffs[key] = comparison_line(db, *key)
        self.post_message(TrainDiffLoaded(export_id, self._diffs[key]))

    def on_train_diff_loaded(self, msg: TrainDiffLoaded) -> None:
        highlighted = self.query_one("#train-exports", OptionList).highlighted_option
        if highlighted is not None and highlighted.id == str(msg.export_id):  # not a line about another export
            self.query_one("#train-diff", Static).update(literal(msg.text))

    @work(group="train-run", exclusive=True, exit_on_error=False)
    async def _run(self, command: list[str]) -> None:
        """Run the command, posting each line of its output, then its exit code."""
        self.process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.post_message(TrainOutput(raw.decode("utf-8", errors="replace").rstrip("\n")))
        self.post_message(TrainExited(await self.process.wait()))

    def on_train_output(self, msg: TrainOutput) -> None:
        self.query_one("#train-log", Log).write_line(msg.line)
        if LOG_MARK in msg.line and self.log_path is None:
            self.log_path = Path(msg.line.split(LOG_MARK, 1)[1].strip())
            self._status(f"Running · log {self.log_path}")

    def on_train_exited(self, msg: TrainExited) -> None:
        self.exit_code = msg.exit_code
        self._tail()
        verdict = {0: "completed", 130: "cancelled (continue with --resume)"}.get(self.exit_code, "failed")
        self._status(f"Run {verdict} (exit code {self.exit_code}).")
        self._load_lists()

    # ------------------------------------------------------------- helpers
    def _status(self, text: str) -> None:
        self.query_one("#train-status", Static).update(Content(text))

    def _tail(self) -> None:
        """Read new events of the run's JSONL log and redraw the loss curve (a small file read)."""
        if self.log_path is None or not self.log_path.exists():
            return
        with self.log_path.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        added = False
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            for key in ("loss", "eval_loss"):
                if isinstance(event.get(key), (int, float)) and isinstance(event.get("step"), int):
                    self.losses[key].append((event["step"], float(event[key])))
                    added = True
        if added:
            self._plot()

    def _plot(self) -> None:
        chart = self.query_one("#train-loss", PlotextPlot)
        chart.plt.clear_data()
        chart.plt.clear_figure()
        for key, label in (("loss", "train loss"), ("eval_loss", "eval loss")):
            if self.losses[key]:
                steps, values = zip(*self.losses[key])
                chart.plt.plot(list(steps), list(values), label=label, marker="braille")
        chart.plt.title("Loss by step")
        chart.refresh()


def comparison_line(db: Database, before: str | None, export_id: int) -> str:
    """The training screen's line on what export_id changes against `before` (the last trained export)."""
    from pipeline.dataset_diff import diff_exports, summary_line
    from pipeline.train.data import DataError

    if before is None:
        return "No completed training run yet: nothing to compare this export with."
    if before == f"export:{export_id}":
        return "The last completed training run used this export."
    try:
        return summary_line(diff_exports(before, f"export:{export_id}", db))
    except DataError as exc:
        return f"Cannot compare with the last trained export: {exc}"
