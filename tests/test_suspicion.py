"""The gold-suspicion score (db/suspicion.py): every signal on a hand-built store, weights, the stored ranking."""
from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from db import write_tx
from db.cartography import Edges
from db.examples import NewExample, example_row, insert_examples
from db.generations import add_generation
from db.reviews import record
from db.runs import start_run
from db.staging import stage_rows
from db.suspicion import SIGNALS, ranking_state, reasons_for, refresh, stored_top, suspects
from pipeline.settings import Suspicion

WEIGHTS = asdict(Suspicion())


def _ok(label):
    return {"predicted_label": label, "parse_status": "ok"}


@pytest.fixture
def store(db):
    """Ten examples (gold 1 unless said), each built to show chosen signals; ids 1..10 by source id."""
    rows = [NewExample(i, "d", "train", str(i), f"premise {i}", f"hypothesis {i}", 0 if i == 9 else 1)
            for i in range(1, 11)]
    with write_tx(db):
        insert_examples(db, [stage_rows([example_row(r) for r in rows])])
    eid = {int(s): i for s, i in db.execute("SELECT source_id, id FROM examples")}

    def thought(i, label, flags=()):
        return add_generation(db, example_id=eid[i], kind="thought", model="m", backend="t", thought_process="t",
                              dedupe_key=f"t{i}", flags=list(flags), **_ok(label))

    t1 = thought(1, 0)  # thought wrong, reflection shown gold still 0, blind 0: three signals
    add_generation(db, example_id=eid[1], kind="reflection", parent_id=t1.id, model="r", backend="t",
                   thought_process="r", dedupe_key="r1", **_ok(0))
    add_generation(db, example_id=eid[1], kind="blind_reflection", parent_id=t1.id, model="r", backend="t",
                   thought_process="b", dedupe_key="b1", **_ok(0))
    t2 = thought(2, 0)  # thought wrong, reflection reaches gold, blind reaches gold: thought signal only
    add_generation(db, example_id=eid[2], kind="reflection", parent_id=t2.id, model="r", backend="t",
                   thought_process="r", dedupe_key="r2", **_ok(1))
    add_generation(db, example_id=eid[2], kind="blind_reflection", parent_id=t2.id, model="r", backend="t",
                   thought_process="b", dedupe_key="b2", **_ok(1))
    thought(3, 1, flags=["label_inconsistent"])  # right, but its label contradicts its text
    t4 = thought(4, 1)  # right; judged low (the latest judge score counts)
    for n, score in enumerate((5.0, 2.0)):
        add_generation(db, example_id=eid[4], kind="judge", parent_id=t4.id, model="j", backend="t", score=score,
                       parse_status="ok", dedupe_key=f"j4-{n}")
    thought(5, 1)  # right; a reviewer suggests the other label
    record(db, "flag_bias", [eid[5]], reviewer="ann", payload={"category": "gold_wrong"})
    record(db, "relabel", [eid[5]], reviewer="ann", payload={"label": 0})
    runs = [start_run(db, "evaluate", {}) for _ in range(3)]
    for run, label in zip(runs, (0, 0, 1)):  # example 6: 2 of 3 adapter runs wrong
        add_generation(db, example_id=eid[6], kind="prediction", model="a", backend="local", run_id=run,
                       dedupe_key=f"p6-{run}", **_ok(label))
    add_generation(db, example_id=eid[7], kind="prediction", model="a", backend="local", run_id=runs[0],
                   dedupe_key="p7-old", **_ok(0))  # an older answer of the same run does not count
    add_generation(db, example_id=eid[7], kind="prediction", model="a", backend="local", run_id=runs[0],
                   dedupe_key="p7-new", **_ok(1))
    add_generation(db, example_id=eid[10], kind="prediction", model="a", backend="local", run_id=runs[0],
                   dedupe_key="p10", predicted_label=None, parse_status="failed")  # unparsed: not evidence
    train = start_run(db, "train", {})
    later = start_run(db, "train", {})
    dynamics = [(train, eid[8], 1, [0.1, 0.2]), (later, eid[8], 1, [0.05, 0.15]),  # hard in the later run
                (train, eid[9], 0, [0.1, 0.2]), (later, eid[9], 0, [0.9, 0.95]),  # hard before, easy now
                (later, eid[2], 1, [0.2, 0.9])]  # ambiguous: not hard-to-learn
    with write_tx(db):
        for run, example, gold, probs in dynamics:
            mean = sum(probs) / 2
            std = abs(probs[0] - probs[1]) / 2
            db.execute("INSERT INTO training_dynamics VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [run, example, gold, json.dumps(probs), mean, std, 0.0])
    return db, eid, later


def test_each_signal_fires_where_built_and_nowhere_else(store):
    db, eid, _later = store
    got = {s.example_id: s for s in suspects(db, WEIGHTS)}
    fired = {i: {r.signal for r in got[eid[i]].reasons} for i in range(1, 11) if eid[i] in got}
    assert fired == {
        1: {"thought_disagrees", "reflection_not_gold", "blind_disagrees"},
        2: {"thought_disagrees"},  # its reflections reach gold; ambiguous, not hard-to-learn
        3: {"label_inconsistent"},
        4: {"judge_low"},
        5: {"reviewer_flag"},
        6: {"adapter_wrong"},
        8: {"hard_to_learn"},  # 7: its latest answer in the run is right; 9: easy in the latest run; 10: unparsed
    }
    assert 7 not in fired and 9 not in fired and 10 not in fired


def test_points_are_weight_times_strength_and_the_details_say_why(store):
    db, eid, later = store
    got = {s.example_id: s for s in suspects(db, WEIGHTS)}
    one = got[eid[1]]
    assert one.score == pytest.approx(1.0 + 1.5 + 2.0)
    assert [r.signal for r in one.reasons] == ["blind_disagrees", "reflection_not_gold", "thought_disagrees"]
    assert one.summary() == ("the blind reflection says no entailment; shown gold, the reflection still says "
                             "no entailment; the thought says no entailment")
    six = got[eid[6]].reasons[0]
    assert six.points == pytest.approx(2.0 * 2 / 3) and six.detail == "2 of 3 adapter runs wrong"
    eight = got[eid[8]].reasons[0]
    assert eight.points == pytest.approx(2.0 * (1 - 0.1))
    assert eight.detail == f"hard-to-learn in run {later} (confidence 0.10, variability 0.05)"
    assert got[eid[4]].reasons[0].detail == "judge score 2 of 5"
    assert got[eid[5]].reasons[0].detail == "flagged by a reviewer (gold_wrong); a reviewer suggests no entailment"


def test_order_weights_and_thresholds(store):
    db, eid, _ = store
    ranked = suspects(db, WEIGHTS)
    assert ranked[0].example_id == eid[1]
    assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)
    only_adapter = suspects(db, {"adapter_wrong": 1.0})
    assert [s.example_id for s in only_adapter] == [eid[6]]
    assert suspects(db, {name: 0.0 for name in SIGNALS}) == []
    strict = suspects(db, {"hard_to_learn": 1.0}, Edges(ambiguous_variability=0.2, hard_confidence=0.05))
    assert strict == []  # confidence 0.1 is not below 0.05
    with pytest.raises(ValueError, match="unknown suspicion signals"):
        suspects(db, {"vibes": 1.0})


def test_reasons_for_one_example_match_the_ranking(store):
    db, eid, _ = store
    ranked = {s.example_id: s for s in suspects(db, WEIGHTS)}
    for i in range(1, 11):
        one = reasons_for(db, eid[i], WEIGHTS)
        assert one == ranked.get(eid[i], one) and (one.score > 0) == (eid[i] in ranked)


def test_the_stored_ranking_and_when_it_goes_stale(store):
    db, eid, _ = store
    assert ranking_state(db) is None
    ranked = refresh(db, WEIGHTS)
    state = ranking_state(db)
    assert state is not None and not state.stale and state.suspects == len(ranked)
    assert state.weights == WEIGHTS
    assert stored_top(db, 3) == ranked[:3]
    ranks = [r[0] for r in db.execute("SELECT example_id FROM suspicion ORDER BY rank")]
    assert ranks == [s.example_id for s in ranked]
    add_generation(db, example_id=eid[3], kind="thought", model="m", backend="t", thought_process="again",
                   dedupe_key="t3-again", **_ok(0))
    assert ranking_state(db).stale
    refresh(db, {"thought_disagrees": 1.0})
    assert not ranking_state(db).stale
    assert [r[0] for r in db.execute("SELECT example_id FROM suspicion ORDER BY rank")] == [eid[1], eid[2], eid[3]]
