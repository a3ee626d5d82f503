"""Stored label attributions (m015; computed by pipeline/attribution.py, `nlistral attribute`): writes per batch,
and the reads the review app and the stats screen need."""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from db.scope import by_ids
from db.tx import write_tx

TOLERANCE = 0.05  # converged: |convergence delta| <= TOLERANCE * max(|output difference|, MIN_DIFFERENCE)
MIN_DIFFERENCE = 0.01  # nats: where the label's log-probability barely moves, the delta is held to 5 % of this


def converged(delta: float, difference: float) -> bool:
    """Whether an integral's convergence delta is within TOLERANCE of the output difference it splits."""
    return abs(delta) <= TOLERANCE * max(abs(difference), MIN_DIFFERENCE)


COLUMNS = ("run_id", "example_id", "generation_id", "label", "logprob", "baseline_logprob", "delta", "premise",
           "hypothesis", "thought", "tokens")


@dataclass(frozen=True)
class TokenScores:
    """The latest attribution of an example's answer: which run and answer, and a score per thought token."""

    run_id: int
    generation_id: int
    label: int
    tokens: list[tuple[int, int, float]]  # start, end (in the answer's thought text), attribution
    shares: dict[str, float]  # premise, hypothesis, thought -> share of the absolute attribution
    missed: float = 0.0  # |delta| / |logprob - baseline_logprob|: the share of the output difference the scores miss
    converged: bool = True  # converged(): the scores are within 5 % of the difference they split


@dataclass(frozen=True)
class RunShares:
    """One attribute run: how many answers, and where their attribution fell on average."""

    run_id: int
    model: str  # the adapter (or base) attributed
    examples: int
    thought: float  # mean share of the absolute attribution on the thought
    premise_hypothesis: float  # mean share on the premise and hypothesis together
    worst_delta: float  # the largest |delta| / |logprob - baseline_logprob|: how well the integral converged
    unconverged: int = 0  # answers whose delta stayed over TOLERANCE (converged()) at the largest step count tried

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (stats --json's attribution rows, attribute --json's summary)."""
        return {"run_id": self.run_id, "model": self.model, "examples": self.examples,
                "thought_share": round(self.thought, 4), "premise_hypothesis_share": round(self.premise_hypothesis, 4),
                "worst_relative_delta": round(self.worst_delta, 6), "unconverged": self.unconverged}


def store(db: Database, rows: Iterable[dict[str, Any]]) -> None:
    """Store attributions (a run's batch; replacing an example's earlier row of the same run)."""
    values = [tuple(json.dumps(r[c]) if c == "tokens" else r[c] for c in COLUMNS) for r in rows]
    with write_tx(db):
        db.conn.executemany(f"INSERT OR REPLACE INTO attributions ({', '.join(COLUMNS)}) "
                            f"VALUES ({', '.join('?' * len(COLUMNS))})", values)


def done_ids(db: Database, run_id: int) -> set[int]:
    """The examples a run has stored."""
    return {r[0] for r in db.execute("SELECT example_id FROM attributions WHERE run_id = ?", [run_id])}


def latest(db: Database, example_id: int) -> TokenScores | None:
    """The example's attribution from its latest attribute run, if any."""
    return latest_for(db, [example_id]).get(example_id)


def latest_for(db: Database, example_ids: Sequence[int]) -> dict[int, TokenScores]:
    """Each example's attribution from its latest attribute run (examples without one left out)."""
    sql = ("SELECT example_id, run_id, generation_id, label, premise, hypothesis, thought, tokens, logprob, "
           "baseline_logprob, delta FROM attributions WHERE example_id IN ({ids}) ORDER BY example_id, run_id")
    found: dict[int, TokenScores] = {}
    for (example_id, run_id, generation_id, label, premise, hypothesis, thought, tokens, logprob, baseline,
         delta) in by_ids(db, sql, example_ids):
        total = premise + hypothesis + thought
        shares = {k: (v / total if total else 0.0) for k, v in
                  (("premise", premise), ("hypothesis", hypothesis), ("thought", thought))}
        difference = logprob - baseline
        found[example_id] = TokenScores(run_id, generation_id, label,  # the last row of an example: its latest run
                                        [(int(a), int(b), float(x)) for a, b, x in json.loads(tokens)], shares,
                                        abs(delta) / abs(difference) if difference else float("inf"),
                                        converged(delta, difference))
    return found


def run_shares(db: Database) -> list[RunShares]:
    """Each attribute run with stored rows, newest first."""
    rows = db.execute(
        "SELECT a.run_id, r.config, count(*), "
        "avg(a.thought / nullif(a.premise + a.hypothesis + a.thought, 0)), "
        "avg((a.premise + a.hypothesis) / nullif(a.premise + a.hypothesis + a.thought, 0)), "
        "max(abs(a.delta) / nullif(abs(a.logprob - a.baseline_logprob), 0)), "
        "sum(abs(a.delta) > ? * max(abs(a.logprob - a.baseline_logprob), ?)) "
        "FROM attributions a JOIN runs r ON r.id = a.run_id GROUP BY a.run_id ORDER BY a.run_id DESC",
        [TOLERANCE, MIN_DIFFERENCE]).fetchall()
    out = []
    for run_id, config, n, thought, context, worst, unconverged in rows:
        settings = json.loads(config or "{}")
        out.append(RunShares(run_id, str(settings.get("adapter") or settings.get("base") or "?"), n,
                             thought or 0.0, context or 0.0, worst or 0.0, int(unconverged or 0)))
    return out
