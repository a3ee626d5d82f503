"""Dialogs whose answer takes effect the moment it is given, before any key typed after it.

Textual runs a `push_screen` callback later, from the requesting screen's message queue, while a key typed
next runs its binding at once from the app's. In a burst such as `r 0 a` the accept could then run before
the reject's answer came back; the answer, now about an example no longer shown, was dropped, and the
decision with it (seen with the app as a real process, 1 burst in about 15, more often under load). So a
dialog is opened with `ask(app, dialog, then)` and answers with `answer(result)`, which closes the dialog
and calls `then` synchronously; a dialog answers once.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from textual.app import App
from textual.screen import ModalScreen

T = TypeVar("T")


class Dialog(ModalScreen[T], Generic[T]):
    """A modal screen that answers once, through the function `ask` gave it."""

    def __init__(self) -> None:
        super().__init__()
        self.answered = False  # an answer (or a cancel) was given: the dialog is closing, and takes no other
        self._then: Callable[[T | None], object] | None = None

    def answer(self, result: T | None) -> None:
        """Close, then apply the answer at once (None: cancelled); later answers are ignored. Closing first
        (Textual takes a screen off the stack at once) lets the answer open a dialog of its own."""
        if self.answered:
            return
        self.answered = True
        self.dismiss(result)
        if self._then is not None:
            self._then(result)


def ask(app: App[Any], dialog: Dialog[T], then: Callable[[T | None], object]) -> None:
    """Open the dialog; `then` gets its answer (None when cancelled) the moment it is given."""
    dialog._then = then
    app.push_screen(dialog)
