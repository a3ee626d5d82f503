"""The team case of benchmarks/tui_latency.py: the 1M store with three reviewers' assignments and decisions.

A copy of the benchmark store where ada, bob and cy are each assigned a third of the examples, a fifth of
them also to a second reviewer (what `nlistral assign --reviewers ada,bob,cy --overlap 0.2` makes), and
have made 100,000 decisions between them, each working through their own queue in id order (so the
"mine" queue starts after what they decided); on shared examples the second reviewer agrees 4 times in 5.
The log rows are inserted directly (one step per decision) and the read models rebuilt from it once.
"""
from __future__ import annotations

import json
import random
import shutil
import sys
import time
from pathlib import Path

REVIEWERS = ("ada", "bob", "cy")
DECISIONS = 100_000
OVERLAP = 0.2
_ACTIONS = (("accept", {}), ("accept", {}), ("accept", {}), ("reject", {"reason": "thought and label disagree"}),
            ("reject", {"reason": "wrong reading of the premise", "comment": "misreads the subject"}),
            ("flag_bias", {"category": "ambiguous", "reason": "ambiguous pair"}))


def assignments(n: int, rng: random.Random) -> dict[str, list[int]]:
    """Each example id 1..n to one reviewer, the overlap share to a second one too."""
    out: dict[str, list[int]] = {r: [] for r in REVIEWERS}
    for eid in range(1, n + 1):
        first = rng.randrange(len(REVIEWERS))
        out[REVIEWERS[first]].append(eid)
        if rng.random() < OVERLAP:
            out[REVIEWERS[(first + 1 + rng.randrange(len(REVIEWERS) - 1)) % len(REVIEWERS)]].append(eid)
    return out


def build_team_store(base: Path, path: Path) -> None:
    """Copy the benchmark store at base to path and add the team's assignments and decisions (once)."""
    from db import open_db
    from db.queues import analyze
    from db.reviews import rebuild_state

    if path.exists():
        return
    started = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    shutil.copyfile(base, tmp)
    db = open_db(tmp)
    n = db.execute("SELECT max(id) FROM examples").fetchone()[0]
    rng = random.Random(5)
    assigned = assignments(n, rng)
    db.conn.executemany("INSERT INTO assignments (reviewer, example_id, assigned_at) VALUES (?, ?, '2026-01-01')",
                        ((r, eid) for r, ids in assigned.items() for eid in ids))
    chosen: dict[int, int] = {}  # example -> the action index the first reviewer chose
    event = db.execute("SELECT coalesce(max(id), 0) FROM review_events").fetchone()[0]
    group = db.execute("SELECT coalesce(max(group_id), 0) FROM review_groups").fetchone()[0]
    events, groups = [], []
    for k in range(DECISIONS // len(REVIEWERS)):  # the reviewers take turns, each in their queue's order
        for reviewer in REVIEWERS:
            eid = assigned[reviewer][k]
            pick = chosen.get(eid)
            pick = rng.randrange(len(_ACTIONS)) if pick is None or rng.random() < 0.2 else pick
            chosen.setdefault(eid, pick)
            action, payload = _ACTIONS[pick]
            event, group = event + 1, group + 1
            events.append((event, eid, action, json.dumps(payload), group, reviewer, 5.0 + k % 40,
                           f"2026-01-02T{k // 3600 % 24:02d}:{k // 60 % 60:02d}:{k % 60:02d}"))
            groups.append((group, event))
    db.conn.executemany("INSERT INTO review_events (id, example_id, action, payload, group_id, reviewer, "
                        "seconds_spent, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
    db.conn.executemany("INSERT INTO review_groups (group_id, active, changed_at_event) VALUES (?, 1, ?)", groups)
    db.conn.commit()
    rebuild_state(db)  # review_state, each reviewer's standing decision, conflicts: from the log
    analyze(db)
    db.conn.close()
    tmp.rename(path)
    print(f"  team store built in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


async def drive_team(db_path: Path, size: tuple[int, int], rounds: int = 5) -> dict[str, list[float]]:
    """Switch to the conflicts queue, to ada's mine queue and back to all with their keys, `rounds` times; the
    in-app time from the key to the refresh that shows the queue's first example, per queue, in ms."""
    from db.queues import QueueFilter
    from nlistral_tui.app import NlistralApp
    from nlistral_tui.pilot import press, ready

    app = NlistralApp(db_path, start_filter=QueueFilter())
    out: dict[str, list[float]] = {"conflicts": [], "mine": []}
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        screen = app.screen
        assert screen.reviewer == "ada", "set NLISTRAL_REVIEWER=ada"
        for _ in range(rounds):
            for key, queue in (("x", "conflicts"), ("m", "mine"), ("1", None)):
                await press(app, pilot, key)
                assert screen.current is not None, f"{key} showed no example"
                if queue is not None:
                    out[queue].append(screen.probe.latency["filter"][-1])
    return out
