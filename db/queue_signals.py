"""The queues of the suspicion signals: suspect gold (in rank order), the named outcome cells, the cartography
regions and the grounding flags. Conditions over `examples e`, joined with the facets by db/queues.py's
where_terms.

They are counted only while shown (each is a scan of the store): the review app offers them from its triage
list (key t) with their counts read there.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from db import grounding
from db.queue_team import FLAGGED

if TYPE_CHECKING:
    from db.queues import QueueFilter

CELL_QUEUES = ("fixed_by_reflection", "reflection_rationalises", "reflections_doubt_gold",
               "adapter_still_wrong_after_reflection", "both_models_disagree_with_gold", "adapter_regressed")
REGION_QUEUES = ("hard_to_learn", "ambiguous", "easy")
RANKED_QUEUES = ("suspect_gold",)  # paged in the stored ranking's order (db/suspicion.py), not by id
GROUNDING_QUEUES = grounding.FLAGS  # the current thought or reflection carries that flag (db/grounding.py)
SIGNAL_QUEUES = (*RANKED_QUEUES, *CELL_QUEUES, *REGION_QUEUES, *GROUNDING_QUEUES)
SIGNAL_TITLES = {
    "suspect_gold": "suspect gold",
    "fixed_by_reflection": "fixed by reflection",
    "reflection_rationalises": "reflection rationalises",
    "reflections_doubt_gold": "reflections doubt gold",
    "adapter_still_wrong_after_reflection": "adapter still wrong after a reflection",
    "both_models_disagree_with_gold": "both models disagree with gold",
    "adapter_regressed": "adapter regressed",
    "hard_to_learn": "hard-to-learn",
    "ambiguous": "ambiguous",
    "easy": "easy",
    "ungrounded_quote": "ungrounded quotes",
    "ungrounded_number": "ungrounded numbers",
}


def signal_queue_sql(f: QueueFilter, per_row: bool) -> tuple[str, list[Any]]:
    """The condition of a signal queue (per_row: as db.queues.queue_sql says)."""
    if f.queue in RANKED_QUEUES:
        if per_row:
            return "EXISTS (SELECT 1 FROM suspicion s0 WHERE s0.example_id = e.id)", []
        return "e.id IN (SELECT example_id FROM suspicion)", []
    if f.queue in GROUNDING_QUEUES:
        return FLAGGED, [f'%"{f.queue}"%']
    if f.queue in CELL_QUEUES:
        from db.outcomes import cell_condition  # outcomes reads db.queues: imported when first asked

        return cell_condition(f.queue), []
    from db.cartography import Edges, region_sql

    defaults = Edges()
    thresholds = Edges(
        ambiguous_variability=defaults.ambiguous_variability if f.ambiguous_variability is None
        else f.ambiguous_variability,
        hard_confidence=defaults.hard_confidence if f.hard_confidence is None else f.hard_confidence)
    return region_sql(f.queue, f.train_run, thresholds)
