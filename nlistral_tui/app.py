"""The review app: a thin App that opens the review screen over one database file."""
from __future__ import annotations

import sys
from concurrent.futures import Future
from pathlib import Path
from typing import ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.widgets import Input
from textual.worker import Worker, WorkerState

from db.journal import Step
from db.queues import QueueFilter
from nlistral_tui.data.store import Store
from nlistral_tui.keys import unknown_ids
from nlistral_tui.messages import OrphansStored, StoreBusy
from nlistral_tui.screens.choice import ChoiceScreen
from nlistral_tui.screens.help import HelpScreen
from nlistral_tui.screens.queue_browser import BROWSE_BINDINGS
from nlistral_tui.screens.review import ReviewScreen
from pipeline.settings import Settings, SettingsError, load_settings, reviewer_name


class NlistralApp(App[None]):
    """Review, export and train: every screen reads the store through per-thread connections."""

    CSS_PATH = "app.tcss"
    TITLE = "NLIstral"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012 - App declares it per instance
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "keys", id="help", tooltip="this list of keys"),
        Binding("S", "stats", "stats", id="stats", tooltip="statistics: states, model vs gold, balance, pace"),
        Binding("E", "export", "export", id="export", tooltip="export training data (counts before writing)"),
        Binding("T", "train", "train", id="train", tooltip="train an adapter on an export"),
        Binding("G", "guidelines", "guide", id="guidelines", show=False,
                tooltip="the team's review guidelines (config `guidelines`, else GUIDE.md beside the store)"),
        Binding("q", "quit", "quit", id="quit", tooltip="quit (every decision is already saved)"),
    ]

    def __init__(self, db_path: Path, settings: Settings | None = None, *, settings_error: str | None = None,
                 start_filter: QueueFilter | None = None) -> None:
        super().__init__()
        self.store = Store(db_path, on_wait=self._store_busy)
        self.settings = settings or Settings()
        self.reviewer = reviewer_name(self.settings)
        self.keymap = dict(self.settings.keymap)
        self._settings_error = settings_error
        self._start_filter = start_filter
        self.sub_title = f"{db_path.name} · reviewer {self.reviewer}"
        self.review: ReviewScreen | None = None
        self.unsaved: list[Step] = []  # steps still only in the journal when the app closed

    def on_mount(self) -> None:
        self.set_keymap(self.keymap)
        unknown = unknown_ids(self.keymap, [*self.BINDINGS, *ReviewScreen.BINDINGS, *BROWSE_BINDINGS])
        if unknown:
            self.notify(f"[keymap] in {self.settings.path} names unknown binding ids: {', '.join(unknown)} "
                        "(press ? for the ids).", severity="warning", timeout=10, markup=False)
        if self._settings_error:
            self.notify(f"{self._settings_error} Using the defaults.", severity="error", timeout=15, markup=False)
        try:
            self.store.open_journal(self.reviewer)
        except OSError as exc:
            self.notify(f"The decision journal cannot be created beside {self.store.path} ({exc.strerror or exc}): "
                        "decisions go straight to the store, and any made while another process holds it are "
                        "lost if the app is killed.", severity="error", timeout=15, markup=False)
        self.store.replay_orphans().add_done_callback(self._replayed)
        self.review = ReviewScreen(self.store, self.reviewer, self.settings, self._start_filter)
        self.push_screen(self.review)

    def _replayed(self, future: Future[int]) -> None:  # on the writer thread
        if not future.cancelled() and future.exception() is None and future.result():
            self.post_message(OrphansStored(future.result()))

    def on_orphans_stored(self, msg: OrphansStored) -> None:
        self.notify(f"Stored {msg.count} review steps that an earlier session had journaled but not saved.", timeout=8)

    def _store_busy(self) -> None:  # on the writer thread, each time a write waits again
        self.post_message(StoreBusy())

    def on_store_busy(self, msg: StoreBusy) -> None:
        self.notify("Another process is writing to the store (an import?). Your decisions are kept in order and "
                    "saved as soon as it finishes.", severity="warning", timeout=8)

    def on_key(self, event: events.Key) -> None:
        """A key typed ahead of a dialog (r then 2 in one burst) went to the screen below it, whose binding opened
        the dialog only after that: it is the dialog's key (and no binding of the screen below gets it)."""
        top = self.screen
        if isinstance(top, ChoiceScreen) and not isinstance(top.focused, Input) and top.take_key(event):
            event.prevent_default()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            review = [*ReviewScreen.BINDINGS, *BROWSE_BINDINGS]
            self.push_screen(HelpScreen([("Review", review), ("Everywhere", self.BINDINGS)]))

    # The other screens are imported when first opened: the review screen starts without them.
    def action_guidelines(self) -> None:
        from nlistral_tui.screens.guidelines import GuidelinesScreen
        from pipeline.guidelines import guidelines_path

        if not isinstance(self.screen, GuidelinesScreen):
            self.push_screen(GuidelinesScreen(guidelines_path(self.settings, self.store.path)))

    def action_stats(self) -> None:
        from nlistral_tui.screens.stats import StatsScreen

        if not isinstance(self.screen, StatsScreen):
            self.push_screen(StatsScreen(self.store))

    def action_export(self) -> None:
        from nlistral_tui.screens.export import ExportScreen

        if not isinstance(self.screen, ExportScreen):
            self.push_screen(ExportScreen(self.store))

    def action_train(self) -> None:
        from nlistral_tui.screens.train import TrainScreen

        # Installed once, so that a run keeps streaming while the reviewer goes back to reviewing.
        if not self.is_screen_installed("train"):
            self.install_screen(TrainScreen(self.store), name="train")
        if not isinstance(self.screen, TrainScreen):
            self.push_screen("train")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(f"{event.worker.name or 'background work'} failed: {event.worker.error}",
                        severity="error", timeout=10, markup=False)

    def on_unmount(self) -> None:
        if self.review is not None:
            self.review.save_position()
        self.unsaved = self.store.close()


def run_app(db_path: Path) -> None:
    """Open the review app on a database file (the `nlistral`, `nlistral tui` and `nlistral demo` commands)."""
    error = None
    try:
        settings = load_settings()
    except SettingsError as exc:
        settings, error = Settings(), str(exc)
    app = NlistralApp(Path(db_path), settings, settings_error=error)
    app.run()
    n = sum(step.op != "position" for step in app.unsaved)
    if n and app.store.journal is not None:
        print(f"nlistral: {n} review step{'' if n == 1 else 's'} could not be stored yet: another process holds the "
              f"write lock of {db_path}. {'It is' if n == 1 else 'They are'} kept in {app.store.journal.path} and "
              "stored the next time nlistral opens this store.", file=sys.stderr)
    if app.return_code:
        sys.exit(app.return_code)
