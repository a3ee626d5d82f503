"""Driving the app headless (tests and the latency benchmark): wait for quiet, read the screen."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from textual.app import App
from textual.pilot import Pilot
from textual.worker import WorkerCancelled

from db import open_db
from db.records import ReviewState
from db.reviews import state


async def settle(app: App[Any], pilot: Pilot[Any]) -> None:
    """Wait until no worker runs and every message is handled (a cancelled exclusive worker is fine)."""
    for _ in range(50):
        try:
            await app.workers.wait_for_complete()
        except WorkerCancelled:
            continue
        await pilot.pause()
        if not any(w.is_running for w in app.workers):
            return
    raise TimeoutError("workers kept starting; the app did not settle")


async def press(app: App[Any], pilot: Pilot[Any], *keys: str) -> None:
    """Press keys, then wait until the app has settled."""
    await pilot.press(*keys)
    await settle(app, pilot)


async def ready(app: App[Any], pilot: Pilot[Any]) -> None:
    """Wait until the review screen shows its first window, then settle."""
    for _ in range(2000):
        if getattr(app.screen, "ready", False):
            break
        await pilot.pause(0.005)
    await settle(app, pilot)


def screen_text(app: App[Any]) -> str:
    """The characters on the terminal now, one line per row (what a user sees, colours left out)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@contextlib.asynccontextmanager
async def running(db_path: Path, size: tuple[int, int] = (200, 50), settings: Any = None,
                  **app_options: Any) -> AsyncIterator[tuple[App[Any], Pilot[Any]]]:
    """The review app on db_path, headless at size, started and showing its first window."""
    from nlistral_tui.app import NlistralApp
    from pipeline.settings import Settings

    app = NlistralApp(db_path, settings or Settings(), **app_options)
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        yield app, pilot


def stored_state(path: Path, example_id: int) -> ReviewState:
    """An example's review state as the store file holds it, read on a connection of its own."""
    db = open_db(path)
    try:
        return state(db, example_id)
    finally:
        db.conn.close()
