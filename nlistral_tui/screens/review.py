"""The review screen: a queue pane and a detail pane; every decision is one key."""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import time
from typing import Any

from textual import events

from db.detail import ExampleDetail, TeamDecision
from db.journal import Step
from db.queues import QueueFilter
from db.reviews import STATUS_AFTER
from nlistral_tui.data.actions import reload_after
from nlistral_tui.data.store import Store
from nlistral_tui.messages import (
    BulkCounted,
    DecisionRecorded,
    ReflectionCompleted,
    ReflectionFailed,
    ReflectionStarted,
    StepRefused,
    StepUndone,
)
from nlistral_tui.screens.dialog import ask
from nlistral_tui.screens.edit import Edit
from nlistral_tui.screens.filters import FilterScreen
from nlistral_tui.screens.prompt import PromptScreen
from nlistral_tui.screens.queue_browser import QueueBrowser
from nlistral_tui.screens.review_dialogs import (
    CLEAR,
    adjudicate_dialog,
    bias_dialog,
    bulk_dialog,
    edit_dialog,
    reason_dialog,
    recorded_again,
    relabel_dialog,
    why,
)
from nlistral_tui.screens.review_keys import REVIEW_BINDINGS
from nlistral_tui.screens.versions import VersionsScreen


class ReviewScreen(QueueBrowser):
    """One example at a time from a queue; decisions are written to the review log in key order."""

    AUTO_FOCUS = ""  # keys go to the screen's bindings (dialogs take focus while open)
    BINDINGS = REVIEW_BINDINGS

    def __init__(self, store: Store, reviewer: str, settings: Any, start_filter: QueueFilter | None = None) -> None:
        super().__init__(store, reviewer, start_filter, settings)
        self.detail.reviewer = reviewer

    # ---------------------------------------------------------------- actions
    def action_next(self) -> None:
        self.move(1)

    def action_previous(self) -> None:
        self.move(-1)

    def action_accept(self) -> None:
        self.decide("accept")

    def action_reject(self) -> None:
        if (d := self._need_current()) is not None:
            self._ask_reason(d, {}, "")

    def action_skip(self) -> None:
        self.decide("skip")

    def action_edit(self) -> None:
        if (d := self._need_current()) is not None:
            ask(self.app, edit_dialog(d), lambda edit: self._edited(d, edit))

    def action_flag_bias(self) -> None:
        if (d := self._need_current()) is not None:
            ask(self.app, bias_dialog(d), lambda result: self._flagged(d, result))

    def action_relabel(self) -> None:
        if (d := self._need_current()) is not None:
            ask(self.app, relabel_dialog(d), self._relabelled)

    def action_comment(self) -> None:
        if (d := self._need_current()) is not None:
            self._ask_comment(d)

    def action_adjudicate(self) -> None:
        if (d := self._need_current()) is not None:
            self._ask_adjudication(d)

    def action_rerun(self) -> None:
        if (d := self._need_current()) is not None:
            self.rerun(d)

    def action_versions(self) -> None:
        if (d := self._need_current()) is None:
            return
        if not d.reflections:
            self.notify("No reflection versions yet: press R to run one.", severity="warning")
            return
        ask(self.app, VersionsScreen(d), self._version_chosen)

    def action_toggle_diff(self) -> None:
        self.detail.toggle_diff()

    def action_toggle_colours(self) -> None:
        d = self.detail.detail
        if d is not None and d.attribution is None:
            self.notify("No attribution for this example yet: run `nlistral attribute --adapter DIR` after an "
                        "evaluate run with thoughts.", severity="warning")
        self.detail.toggle_colours()

    def action_undo(self) -> None:
        self._submit(Step("undo", self.reviewer), [])

    def action_redo(self) -> None:
        self._submit(Step("redo", self.reviewer), [])

    def action_search(self) -> None:
        self.pane.open_search()

    def on_key(self, event: events.Key) -> None:
        """While the search line is open, every key is typing (no binding fires)."""
        if not self.pane.searching:
            return
        event.stop()
        event.prevent_default()
        text = self.pane.search_key(event)
        if text is not None:
            self.set_filter(self.filter.replace(search=text), "search")

    def action_filter(self) -> None:
        if self.facets is None:
            self.notify("Still reading the datasets and models; try again in a moment.")
            return
        ask(self.app, FilterScreen(self.filter, self.facets), self._filter_chosen)

    def action_clear_filter(self) -> None:
        self.set_filter(QueueFilter(queue=self.filter.queue), "filter")

    def action_queue(self, queue: str) -> None:
        self.set_filter(self.filter.replace(queue=queue), "filter")

    def action_cycle_queue(self, step: int) -> None:
        self.action_queue(self.next_queue(step))

    def action_jump(self) -> None:
        ask(self.app, PromptScreen("Jump to example id", "e.g. 1234", "integer"), self._jump_to)

    def action_bulk(self, action: str) -> None:
        self.feed.count_bulk(action, self.filter)

    def action_page(self, step: int) -> None:
        self.detail.page(step > 0)

    # --------------------------------------------------------------- deciding
    def _need_current(self) -> ExampleDetail | None:
        if self.current is None:
            self.notify("No example is shown: this queue is empty or still loading.", severity="warning")
        return self.current

    def decide(self, action: str, payload: dict[str, Any] | None = None, advance: bool | None = None) -> None:
        """Record a decision on the shown example; accept, reject, edit and skip move on to the next one."""
        d = self._need_current()
        if d is None:
            return
        seconds = round(time.monotonic() - self.detail.shown_at, 2)
        step = Step("record", self.reviewer, action, (d.id,), payload or {}, seconds, at=self._at(d.id))
        if not self._submit(step, [d.id]):
            return
        status = {"status": STATUS_AFTER[action]} if action in STATUS_AFTER else {}
        self.window.mark(d.id, unsaved=True, **status)
        if advance if advance is not None else action in (*STATUS_AFTER, "skip"):
            if self.window.can_move(1) or not self.window.at_end:
                self.move(1)
            else:
                self._show_cursor()
        else:
            self.pane.show_rows()

    def _at(self, example_id: int | None) -> dict[str, Any]:
        """Where the reviewer stands, journaled with each step so the app reopens there."""
        return {"filter": dataclasses.asdict(self.filter), "example": example_id}

    def _submit(self, step: Step, reload: list[int]) -> bool:
        """Journal the step (on disk before anything shows it as made) and have the writer store it."""
        try:
            future = self.store.submit(step, reload_after(reload, self.filter.run_id))
        except OSError as exc:
            self.notify(f"Not saved: the decision journal {self.store.journal.path if self.store.journal else ''} "
                        f"cannot be written ({exc.strerror or exc}). Free some disk space and press the key again.",
                        severity="error", timeout=15, markup=False)
            return False
        self.feed.await_step(future)
        return True

    def rerun(self, d: ExampleDetail) -> None:
        """Re-run an example's reflection (a new version), when it has a thought and the pipeline is here."""
        if d.thought is None:
            self.notify("This example has no thought to reflect on yet: run `nlistral generate` first.",
                        severity="warning")
        elif importlib.util.find_spec("pipeline.generate") is None:
            self.notify("Re-running needs the generation pipeline (pipeline/generate/), which this install "
                        "lacks.", severity="error")
        else:
            self.feed.rerun(d.id, self.settings)

    def save_position(self) -> None:
        """Journal where the reviewer stands (on quitting), so the app reopens here."""
        if self.ready:
            current = self.window.current
            with contextlib.suppress(OSError, ValueError):
                self.store.submit(Step("position", self.reviewer, at=self._at(current.id if current else None)))

    # ---------------------------------------------------- reasons, comments, adjudication
    def _shown(self, d: ExampleDetail) -> bool:
        """Whether d is still the example shown (a dialog's answer applies to the example it was asked on)."""
        return self.current is not None and self.current.id == d.id

    def _ask_reason(self, d: ExampleDetail, payload: dict[str, Any], comment: str) -> None:
        """Reject d, after asking why: a reason key and an optional comment (payload: an adjudication's)."""
        def rejected(result: tuple[str, str] | None) -> None:
            if result is not None and self._shown(d):
                self.decide("reject", why(payload, *result))
        ask(self.app, reason_dialog("reject", d.id, self.settings.reasons, comment), rejected)

    def _ask_comment(self, d: ExampleDetail) -> None:
        """A comment rides on a decision: it records the reviewer's standing decision again, with the comment."""
        mine = d.decision_of(self.reviewer)
        if mine is None:
            self.notify(f"A comment goes with your decision: decide #{d.id} first (a, r, e or b), then press C. "
                        "r also takes a comment in its dialog (tab).", severity="warning", markup=False)
            return

        def commented(text: str | None) -> None:
            if text is not None and text != (mine.comment or "") and self._shown(d):
                self.decide(mine.action, recorded_again(mine, text), advance=False)
        ask(self.app, PromptScreen(f"Comment on your {mine.decision} of #{d.id}", "empty clears it",
                                   value=mine.comment or "", hint="enter saves · esc cancels"), commented)

    def _ask_adjudication(self, d: ExampleDetail) -> None:
        if not (d.state.conflict or d.state.adjudicated):
            self.notify(f"#{d.id} has no conflict to adjudicate: its reviewers agree (or only one decided).",
                        severity="warning")
            return

        def adjudicated(result: tuple[TeamDecision | str, str] | None) -> None:
            if result is None or not self._shown(d):
                return
            choice, comment = result
            if isinstance(choice, TeamDecision):
                self.decide(choice.action, recorded_again(choice, comment or choice.comment, adjudication=True))
            elif choice == "accept":
                self.decide("accept", why({"adjudication": True}, None, comment))
            else:
                self._ask_reason(d, {"adjudication": True}, comment)
        ask(self.app, adjudicate_dialog(d, self.reviewer), adjudicated)

    # ------------------------------------------------------- dialog results
    def _edited(self, d: ExampleDetail, edit: Edit | None) -> None:
        if edit is not None and self.current is not None and self.current.id == d.id:
            self.decide("edit", {"thought": edit.thought, "label": edit.label, "base": d.improved_thought})

    def _flagged(self, d: ExampleDetail, result: tuple[str | None, str] | None) -> None:
        if result is None or not self._shown(d):
            return
        category, note = result
        if category is None:
            self.decide("unflag_bias", advance=False)
            return

        def reasoned(reason: str | None) -> None:  # None: esc cancelled the flag
            if reason is not None and self._shown(d):
                self.decide("flag_bias", why({"category": category, "note": note}, reason, None), advance=False)
        ask(self.app, reason_dialog("flag", d.id, self.settings.reasons, None), reasoned)

    def _relabelled(self, label: int | str | None) -> None:
        if label is not None:
            self.decide("relabel", {"label": None if label == CLEAR else label}, advance=False)

    def _version_chosen(self, generation_id: int | None) -> None:
        if generation_id is not None:
            self.decide("choose_reflection", {"generation_id": generation_id}, advance=False)

    def _filter_chosen(self, f: QueueFilter | None) -> None:
        if f is not None:
            self.set_filter(f, "filter")

    def _bulk_chosen(self, action: str, chosen: list[int] | None) -> None:
        if chosen:
            self._submit(Step("record", self.reviewer, action, tuple(sorted(chosen))), [])

    # --------------------------------------------------------------- handlers
    # The feed's workers (data/queue_feed.py) report by posting these messages.
    def on_decision_recorded(self, msg: DecisionRecorded) -> None:
        self.feed.details.update(msg.details)
        for i, d in msg.details.items():
            self.window.mark(i, status=d.state.status, flagged=d.state.bias_category is not None,
                             suggested_label=d.state.suggested_label, unsaved=False)
        if self.current is not None and self.current.id in msg.details:
            self._display(msg.details[self.current.id])
        if len(msg.ids) > 1:
            verb = {"accept": "Accepted", "reject": "Rejected"}.get(msg.action, msg.action)
            self.notify(f"{verb} {len(msg.ids):,} examples (one step: u undoes it).")
            self.action_refresh()
        self.pane.show_rows()
        self.feed.count(self.filter)

    def on_step_undone(self, msg: StepUndone) -> None:
        what = f"#{msg.ids[0]}" if len(msg.ids) == 1 else f"{len(msg.ids):,} examples"
        self.notify(f"{'Redid' if msg.redo else 'Undid'} {msg.action.replace('_', ' ')} on {what}.")
        self.feed.forget(msg.ids)
        if len(msg.ids) == 1:
            self.feed.locate(msg.ids[0], self.filter, switch=False)
        else:
            self.action_refresh()

    def on_step_refused(self, msg: StepRefused) -> None:
        self.notify(msg.message, severity="warning", markup=False)

    def on_bulk_counted(self, msg: BulkCounted) -> None:
        if msg.filter != self.filter:
            return
        if not msg.undecided and not msg.decided:
            self.notify("Nothing to do: the current filter selects no examples.", severity="warning")
            return
        ask(self.app, bulk_dialog(msg.action, msg.filter, msg.undecided, msg.decided),
                      lambda chosen: self._bulk_chosen(msg.action, chosen))

    def on_reflection_started(self, msg: ReflectionStarted) -> None:
        self.notify(f"Re-running the reflection of #{msg.example_id}…", timeout=3)

    def on_reflection_completed(self, msg: ReflectionCompleted) -> None:
        self.notify(f"New reflection version for #{msg.example_id} (v shows the versions).")
        self.feed.reload(msg.example_id)

    def on_reflection_failed(self, msg: ReflectionFailed) -> None:
        self.notify(f"Re-run of #{msg.example_id} failed: {msg.message}", severity="error", timeout=10,
                    markup=False)
