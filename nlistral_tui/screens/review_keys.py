"""The review screen's keys: every binding with an id (a [keymap] in the config file remaps them by id)."""
from __future__ import annotations

from textual.binding import Binding, BindingType

from db.queues import QUEUE_TITLES, QUEUES
from nlistral_tui.widgets.queue_bar import queue_key

REVIEW_BINDINGS: list[BindingType] = [
    Binding("j,down", "next", "next", id="next", tooltip="next example"),
    Binding("k,up", "previous", "prev", id="previous", tooltip="previous example"),
    Binding("a", "accept", "accept", id="accept", tooltip="accept and move on"),
    Binding("r", "reject", "reject", id="reject",
            tooltip="reject and move on: 1-9 a reason, 0 or enter none, tab a comment"),
    Binding("e", "edit", "edit", id="edit", tooltip="edit the improved thought and its label"),
    Binding("s", "skip", "skip", id="skip", tooltip="skip (stays pending) and move on"),
    Binding("u,ctrl+z", "undo", "undo", id="undo", tooltip="undo your last step (any time, any session)"),
    Binding("space,pagedown", "page(1)", "more", id="page_down", tooltip="scroll the text down"),
    Binding("question_mark", "app.help", "keys", id="help", tooltip="this list of keys"),
    Binding("U,ctrl+y", "redo", "redo", id="redo", tooltip="redo your last undone step"),
    Binding("b", "flag_bias", "bias", id="flag_bias", tooltip="flag labeler bias (category and note, then a reason)"),
    Binding("l", "relabel", "relabel", id="relabel", tooltip="suggest a label beside gold"),
    Binding("R", "rerun", "re-run", id="rerun", tooltip="re-run the reflection (a new version)"),
    Binding("v", "versions", "versions", id="versions", tooltip="browse and choose reflection versions"),
    Binding("d", "toggle_diff", "diff", id="toggle_diff",
            tooltip="diff: flawed thought vs improved (on an edited example: the edit)"),
    Binding("i", "toggle_colours", "attribution", id="toggle_colours", show=False,
            tooltip="colour the attributed answer's thought by attribution (`nlistral attribute`)"),
    Binding("slash", "search", "search", id="search", tooltip="full-text search (enter applies)"),
    Binding("f", "filter", "filter", id="filter", tooltip="filter: dataset, split, gold, model, run"),
    Binding("c", "clear_filter", "clear", id="clear_filter", tooltip="clear the search and the filters"),
    Binding("right_square_bracket", "cycle_queue(1)", "queue", id="next_queue", tooltip="next queue"),
    Binding("left_square_bracket", "cycle_queue(-1)", "queue", id="previous_queue", show=False,
            tooltip="previous queue"),
    Binding("g", "jump", "jump", id="jump", tooltip="jump to an example id"),
    Binding("A", "bulk('accept')", "accept all", id="bulk_accept", tooltip="accept everything in the filter"),
    Binding("X", "bulk('reject')", "reject all", id="bulk_reject", tooltip="reject everything in the filter"),
    Binding("f5,ctrl+l", "refresh", "refresh", id="refresh", tooltip="reload rows written elsewhere"),
    Binding("pageup", "page(-1)", "page up", id="page_up", show=False, tooltip="scroll the text up"),
    Binding("C", "comment", "comment", id="comment", show=False,
            tooltip="comment on your decision (records it again with the comment; empty clears it)"),
    Binding("J", "adjudicate", "adjudicate", id="adjudicate", show=False,
            tooltip="adjudicate a conflict: the final decision, marked as an adjudication in the log"),
    *(Binding(queue_key(q), f"queue('{q}')", QUEUE_TITLES[q], id=f"queue_{q}", show=False,
              tooltip=f"queue: {QUEUE_TITLES[q]}") for q in QUEUES),
]
