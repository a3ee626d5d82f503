"""The review read model of one example: everything the detail pane shows, loaded in batches for prefetching."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlite_utils import Database

from db.attributions import TokenScores, latest_for
from db.outcomes import reflection_value
from db.records import Example, Generation, ReviewState
from db.scope import by_ids
from db.suspicion import Ranked, stored_for


@dataclass(frozen=True)
class TeamDecision:
    """One reviewer's standing decision on an example (db/team.py derives them from the log)."""

    reviewer: str
    decision: str  # accept | reject | edit | flag (a bias flag)
    reason: str | None
    comment: str | None
    adjudication: bool
    payload: str  # the deciding event's payload, as JSON (a comment re-records the decision with it)

    @property
    def action(self) -> str:
        """The review action that records this decision again."""
        return "flag_bias" if self.decision == "flag" else self.decision


@dataclass(frozen=True)
class ExampleDetail:
    """One example with its current thought, reflection versions, blind reflection, judge scores, prediction and
    review state."""

    example: Example
    thought: Generation | None
    reflection: Generation | None  # the chosen version, else the latest reflection of the thought
    reflections: tuple[Generation, ...]  # every reflection of the current thought, oldest first
    judges: tuple[Generation, ...]  # judge scores of this example's thought or reflections
    prediction: Generation | None  # the latest prediction (of the evaluate run in the filter, if any)
    state: ReviewState
    edit_base: str | None = None  # the text the current edit replaced, as the edit recorded it
    edit_words: int | None = None  # the words that edit changed, as it recorded them (db.textdiff.edit_size)
    decisions: tuple[TeamDecision, ...] = ()  # each reviewer's standing decision, oldest first
    blind: Generation | None = None  # the latest blind reflection of the current thought (`reflect --blind`)
    suspicion: Ranked | None = None  # its place in the stored gold-suspicion ranking (db/suspicion.py), if ranked
    attribution: TokenScores | None = None  # the latest label attribution of an answer (`nlistral attribute`)
    attributed: Generation | None = None  # the answer (a prediction) that attribution explains

    def decision_of(self, reviewer: str) -> TeamDecision | None:
        """This reviewer's standing decision, if any."""
        return next((t for t in self.decisions if t.reviewer == reviewer), None)

    @property
    def edited(self) -> bool:
        """Whether the current decision is an edit (its text and label are what a curated export uses)."""
        return self.state.status == "edited" and bool(self.state.edited_thought)

    @property
    def id(self) -> int:
        """The example's id."""
        return self.example.id

    @property
    def reflection_outcome(self) -> str | None:
        """The reflection axis of the outcome cells (db/outcomes.py) when a blind reflection with a label sits
        beside a reflection: robust, rationalised, doubts_gold (or no_gold, unparsed); None otherwise."""
        if self.reflection is None or self.blind is None or self.blind.predicted_label is None:
            return None
        return reflection_value(self.example.gold_label, self.reflection.predicted_label, self.blind.predicted_label)

    @property
    def improved_thought(self) -> str:
        """The text an edit starts from: the current edit, else the reflection's thought, else the thought."""
        for text in (self.state.edited_thought, self.reflection and self.reflection.thought_process,
                     self.thought and self.thought.thought_process):
            if text:
                return text
        return ""

    @property
    def improved_label(self) -> int | None:
        """The label an edit starts from: the current edit's, else the reflection's, else gold."""
        if self.state.edited_label is not None:
            return self.state.edited_label
        if self.reflection and self.reflection.predicted_label is not None:
            return self.reflection.predicted_label
        return self.example.gold_label


def load_details(db: Database, ids: Sequence[int], run_id: int | None = None) -> dict[int, ExampleDetail]:
    """The details of the examples with these ids (unknown ids left out), in six queries (seven with edits)."""
    ids = list(dict.fromkeys(int(i) for i in ids))
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    examples = {r["id"]: Example.from_row(r) for r in db.query(f"SELECT * FROM examples WHERE id IN ({marks})", ids)}
    gens: dict[int, list[Generation]] = {}
    for row in db.query(f"SELECT * FROM generations WHERE example_id IN ({marks}) ORDER BY id", ids):
        gens.setdefault(row["example_id"], []).append(Generation.from_row(row))
    states = {r["example_id"]: ReviewState.from_row(r)
              for r in db.query(f"SELECT * FROM review_state WHERE example_id IN ({marks})", ids)}
    bases = _edit_bases(db, [i for i, s in states.items() if s.status == "edited"])
    team = _team_decisions(db, ids)
    ranked = stored_for(db, ids)
    attributed = latest_for(db, ids)
    return {i: _detail(ex, gens.get(i, []), states.get(i), run_id, bases.get(i, (None, None)), team.get(i, ()),
                       ranked.get(i), attributed.get(i))
            for i, ex in examples.items()}


def _team_decisions(db: Database, ids: list[int]) -> dict[int, tuple[TeamDecision, ...]]:
    """Each example's standing decisions by reviewer, oldest first, with the payload that made each."""
    sql = ("SELECT d.example_id, d.reviewer, d.decision, d.reason, d.comment, d.adjudication, e.payload "
           "FROM review_decisions d JOIN review_events e ON e.id = d.event_id "
           "WHERE d.example_id IN ({ids}) ORDER BY d.example_id, d.event_id")
    found: dict[int, list[TeamDecision]] = {}
    for i, reviewer, decision, reason, comment, adjudication, payload in by_ids(db, sql, ids):
        found.setdefault(i, []).append(TeamDecision(reviewer, decision, reason, comment, bool(adjudication), payload))
    return {i: tuple(ts) for i, ts in found.items()}


def _edit_bases(db: Database, ids: list[int]) -> dict[int, tuple[str | None, int | None]]:
    """The base text (what it replaced) of each example's latest active edit, and the words it changed as the
    edit recorded them (None for an edit recorded before sizes were)."""
    sql = ("SELECT e.example_id, json_extract(e.payload, '$.base'), json_extract(e.payload, '$.edit_words') "
           "FROM review_events e JOIN review_groups g ON g.group_id = e.group_id "
           "WHERE e.example_id IN ({ids}) AND e.action = 'edit' AND g.active = 1 ORDER BY e.id")
    # ordered by id: each example keeps its latest edit's
    return {i: (base, words) for i, base, words in by_ids(db, sql, ids)}


def _detail(ex: Example, gens: list[Generation], state: ReviewState | None, run_id: int | None,
            edit: tuple[str | None, int | None] = (None, None), decisions: tuple[TeamDecision, ...] = (),
            suspicion: Ranked | None = None, attribution: TokenScores | None = None) -> ExampleDetail:
    by_id = {g.id: g for g in gens}
    thought = by_id.get(ex.thought_id) if ex.thought_id else None
    reflections = tuple(g for g in gens if g.kind == "reflection" and thought and g.parent_id == thought.id)
    reflection = by_id.get(ex.reflection_id) if ex.reflection_id else None
    predictions = [g for g in gens if g.kind == "prediction" and (run_id is None or g.run_id == run_id)]
    blinds = [g for g in gens if g.kind == "blind_reflection" and thought and g.parent_id == thought.id]
    return ExampleDetail(
        example=ex,
        thought=thought,
        reflection=reflection,
        reflections=reflections,
        judges=tuple(g for g in gens if g.kind == "judge"),
        prediction=predictions[-1] if predictions else None,
        state=state or ReviewState(example_id=ex.id),
        edit_base=edit[0],
        edit_words=edit[1],
        decisions=decisions,
        blind=blinds[-1] if blinds else None,
        suspicion=suspicion,
        attribution=attribution,
        attributed=by_id.get(attribution.generation_id) if attribution else None,
    )
