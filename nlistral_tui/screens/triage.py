"""The triage list (key t): the signal queues with their counts, and recomputing the suspect-gold ranking."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from db.cartography import Edges
from db.queue_signals import GROUNDING_QUEUES, SIGNAL_QUEUES, SIGNAL_TITLES
from db.queues import QueueFilter
from db.suspicion import RankingState
from nlistral_tui.screens.choice import ChoiceScreen

REFRESH = "refresh"  # the choice that recomputes the ranking
GROUNDING_KEYS = {"ungrounded_quote": "q", "ungrounded_number": "n"}


def triage_dialog(counts: dict[str, int], ranking: RankingState | None) -> ChoiceScreen:
    """Keys 1-9 and 0 open a signal queue, q and n a grounding one; r recomputes the ranking the suspect-gold
    queue is read in."""
    if ranking is None:
        state = "suspect ranking never computed"
    else:
        state = (f"suspect ranking of {ranking.computed_at[:16].replace('T', ' ')}"
                 + (", the store changed since" if ranking.stale else ""))
    numbered = [q for q in SIGNAL_QUEUES if q not in GROUNDING_QUEUES]
    keys = {**{q: str((i + 1) % 10) for i, q in enumerate(numbered)}, **GROUNDING_KEYS}
    choices: list[tuple[str, str, Any]] = [
        (keys[q], f"{SIGNAL_TITLES[q]}  {counts.get(q, 0):,}", q) for q in SIGNAL_QUEUES]
    choices.append(("r", "recompute the suspect ranking now (weights from [suspicion] in the config)", REFRESH))
    return ChoiceScreen(f"Triage · {state}", choices,
                        hint="1-0, q, n open a queue · r recomputes the suspect ranking · esc cancels")


def with_thresholds(f: QueueFilter, settings: Any) -> QueueFilter:
    """The filter with the cartography region edges of the settings (the region queues read them)."""
    edges = settings.cartography
    return f.replace(ambiguous_variability=edges.ambiguous_variability, hard_confidence=edges.hard_confidence)


def ranking_inputs(settings: Any) -> tuple[dict[str, float], Edges]:
    """The weights and region edges the ranking is computed with."""
    return dict(asdict(settings.suspicion)), settings.cartography
