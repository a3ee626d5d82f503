"""DPO exports: prompt / chosen / rejected pairs from review decisions, each with its provenance.

A line is {"id", "prompt", "chosen", "rejected", "provenance"}: `prompt` is the user turn
(exports.formats.user_prompt), `chosen` and `rejected` are assistant turns (exports.formats.cot_target
JSON strings). Which generations pair up is in exports.rules (module docstring).
"""
from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from exports.fast.block import Block, BlockBuilder
from exports.length import LengthCheck, estimate_tokens
from exports.lines import dpo_line, sft_text
from exports.options import DpoOptions
from exports.policy import Decision, block_decisions, block_reasons, provenance_of, settle
from exports.routing import SMALL_EDIT, block_edits, edit_ratio, is_large, routed
from exports.rules import SourceRow, Target, dpo_sides
from exports.selection import Selector
from exports.source import Source, passed_over_versions

RULE = "review-pairs"
RULE_TEXT = ("chosen: the curated target of an accepted or edited example (an edit larger than the route's "
             "small share, the accepted reflection, or a thought that reaches the label; a small edit gives no "
             "pair); rejected: each generation the reviewer passed over "
             "(the flawed thought, the reflection an edit or a relabel replaced, reflection versions not chosen); "
             "where reviewers disagree, an adjudication, else the policy; each pair's provenance names the "
             "reviewers' standing decisions with their reasons and comments")


def describe(options: DpoOptions) -> str:
    """The pairing rule of these options in words."""
    flags = [name for name in ("include_bias", "use_relabels") if getattr(options, name)]
    scope = ", ".join(options.splits) + (f" of {', '.join(options.datasets)}" if options.datasets else "")
    flags += [f"policy {options.policy}", f"route small={options.route_small:g}"]
    return (f"{RULE}: {RULE_TEXT}" + (f" [{', '.join(flags)}]" if flags else "")
            + f"; splits {scope}; at most {options.max_tokens} tokens; duplicates written once")


def provenance(row: SourceRow, chosen: Target, rejected: Target,
               decisions: list[Decision] | None = None) -> dict[str, Any]:
    """Where both sides of a pair came from, and the reviewers' standing decisions behind it (keys in
    exports.lines.PROVENANCE_FIELDS order)."""
    return {
        "dataset": row.dataset, "split": row.split, "source_id": row.source_id, "gold_label": row.gold,
        "target_label": chosen.label, "review_status": row.status, "reviewer": row.reviewer,
        "review_event": row.last_event_id, "chosen_source": chosen.source,
        "chosen_generation_id": chosen.generation_id, "chosen_model": chosen.model,
        "rejected_source": rejected.source, "rejected_generation_id": rejected.generation_id,
        "rejected_model": rejected.model, "decisions": provenance_of(decisions),
    }


def selector(options: DpoOptions) -> Selector:
    """How a DPO export with these options reads its examples and selects a block of them."""
    source = Source(options.scope, reflections="reviewed", review=True, provenance=True)

    def build(db: Database, length: LengthCheck, rows: list[SourceRow]) -> Block:
        team = block_decisions(db, rows)
        edits = block_edits(db, rows)
        block = BlockBuilder(block_reasons(team, rows))
        counter, limit = length.counter, length.max_tokens
        built: list[tuple[SourceRow, Target, list[Target]]] = []
        rows_out: list[tuple[str, str, str, int]] = []
        for row in rows:
            settled = settle(row, options.policy, team.get(row.id, ()))
            if isinstance(settled, str):
                block.leave_out(row.id, settled)
                continue
            row = settled
            sides = dpo_sides(row, passed_over_versions(db, row), include_bias=options.include_bias,
                              use_relabels=options.use_relabels)
            if isinstance(sides, str):
                block.leave_out(row.id, sides)
                continue
            if sides[0].source == "edit":
                ratio = edit_ratio(row, edits)
                if not is_large(ratio, options.route_small):
                    block.leave_out(row.id, SMALL_EDIT)
                    continue
                sides = (routed(sides[0], ratio, options.route_small), sides[1])
            built.append((row, *sides))
            rows_out.extend((row.premise, row.hypothesis, t.thought, t.label) for t in (sides[0], *sides[1]))
        lengths = iter(counter.count(rows_out) if counter is not None
                       else [estimate_tokens(sft_text(*r)) for r in rows_out])
        for row, chosen, rejected in built:
            chosen_fits = next(lengths) <= limit
            fitting = [side for side in rejected if next(lengths) <= limit and chosen_fits]
            if len(fitting) < len(rejected):
                block.leave_out(row.id, "too_long", len(rejected) - len(fitting))
            if fitting:
                block.take_lines(row, [dpo_line(row.id, row.dataset, row.source_id, row.premise, row.hypothesis,
                                                (chosen.thought, chosen.label),
                                                (side.thought, side.label),
                                                provenance(row, chosen, side, team.get(row.id))).encode()
                                       for side in fitting],
                                 [(chosen.label, f"{chosen.source}>{side.source}", chosen.model) for side in fitting])
        return block.finish(len(rows))

    return Selector("dpo", RULE, source, build, "dpo", describe(options))
