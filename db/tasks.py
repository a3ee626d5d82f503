"""What is still to generate: the examples (with the answer they build on) that lack an answer of this kind,
model and prompt version.

A thought is asked of an example; a reflection of the current thought when it disagrees with gold, and so is a
blind reflection (gold only selects the thoughts: the blind prompt is never given it); a judge score of the
current thought or reflection when it parsed. An answer counts as there once stored, even a failed one, unless
`retry_failed`.
"""
from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from db.scope import Scope

JUDGE_TARGETS = ("thought", "reflection")
TASK_KINDS = ("thought", "reflection", "blind_reflection", "judge")

# The current thought, when it disagrees with gold: what a reflection and a blind reflection are asked of.
_WRONG_THOUGHT = ("JOIN generations g ON g.id = e.thought_id",
                  "e.gold_label IS NOT NULL AND g.predicted_label IS NOT NULL AND g.predicted_label != e.gold_label")
# What a reflection or judge score is asked of: the answer it builds on, and which of those answers qualify.
_PARENT: dict[str, tuple[str, str]] = {
    "reflection": _WRONG_THOUGHT,
    "blind_reflection": _WRONG_THOUGHT,
    "judge_thought": ("JOIN generations g ON g.id = e.thought_id", "g.parse_status != 'failed'"),
    "judge_reflection": ("JOIN generations g ON g.id = e.reflection_id", "g.parse_status != 'failed'"),
}


def pending_rows(db: Database, scope: Scope, kind: str, model: str, prompt_version: str, *,
                 retry_failed: bool = False, judge_target: str = "thought") -> list[dict[str, Any]]:
    """The rows still to ask, in example order, at most scope.limit: id, premise, hypothesis, gold_label,
    parent_id, thought and label (of the parent answer; NULL for thoughts) and attempts (answers of this
    kind, model and prompt version already stored for the same example or parent)."""
    if kind not in TASK_KINDS:
        raise ValueError(f"kind must be one of {TASK_KINDS}, not {kind!r}")
    if kind == "thought":
        columns, join, cond, owner = "NULL AS parent_id, NULL AS thought, NULL AS label", "", "1", "x.example_id = e.id"
    else:
        if judge_target not in JUDGE_TARGETS:
            raise ValueError(f"judge_target must be one of {JUDGE_TARGETS}, not {judge_target!r}")
        join, cond = _PARENT[f"judge_{judge_target}" if kind == "judge" else kind]
        columns = "g.id AS parent_id, g.thought_process AS thought, g.predicted_label AS label"
        owner = "x.parent_id = g.id"
    same = f"{owner} AND x.kind = ? AND x.model = ? AND x.prompt_version = ?"
    done = " AND x.parse_status != 'failed'" if retry_failed else ""
    where, where_args = scope.where("e")
    limit, limit_args = scope.limit_sql()
    sql = f"""
        SELECT e.id, e.premise, e.hypothesis, e.gold_label, {columns},
            (SELECT count(*) FROM generations x WHERE {same}) AS attempts
        FROM examples e {join}
        WHERE {where} AND {cond} AND NOT EXISTS (SELECT 1 FROM generations x WHERE {same}{done})
        ORDER BY e.id{limit}"""
    answer = [kind, model, prompt_version]
    return list(db.query(sql, [*answer, *where_args, *answer, *limit_args]))
