"""SFT exports: one training row per selected example, in the [INST] text or chat-messages layout.

The selection rules are in exports.rules (module docstring); selecting in blocks and merging them
in exports.selection; the export's run and lineage in exports.run, its one entry point.
"""
from __future__ import annotations

from sqlite_utils import Database

from exports.fast.block import Block, BlockBuilder
from exports.fast.sft_layout import sft_lines
from exports.length import LengthCheck
from exports.options import SftOptions
from exports.policy import block_decisions, block_reasons, settle
from exports.routing import block_edits, edit_ratio, routed
from exports.rules import SourceRow, sft_rule
from exports.selection import Selector
from exports.source import Source

RULE_TEXT = {
    "correct-only": "the thoughts whose label equals gold",
    "reflected": "the thoughts whose label equals gold, plus for the others the latest reflection of the "
                 "thought when its label equals gold (reflections arguing the other label are left out)",
    "unmodified": "every parsed thought as generated, wrong labels included",
    "curated": "review decisions applied: edits as edited (an edit over the route's small share counted as "
               "edit_large), rejected left out, bias-flagged left out unless "
               "include_bias, relabels only with use_relabels, pending by the reflected rule unless "
               "reviewed_only, the chosen reflection version where one was chosen; where reviewers disagree, an "
               "adjudication, else the policy",
}


def describe(options: SftOptions) -> str:
    """The selection rule of these options in words (for the manifest, the CLI and the export screen)."""
    flags = [name for name in ("include_bias", "use_relabels", "reviewed_only") if getattr(options, name)]
    scope = ", ".join(options.splits) + (f" of {', '.join(options.datasets)}" if options.datasets else "")
    if options.ablation == "curated":
        flags += [f"policy {options.policy}", f"route small={options.route_small:g}"]
    return (f"{options.ablation}: {RULE_TEXT[options.ablation]}" + (f" [{', '.join(flags)}]" if flags else "")
            + f"; splits {scope}; at most {options.max_tokens} tokens; duplicates written once")


def selector(options: SftOptions) -> Selector:
    """How an SFT export with these options reads its examples and selects a block of them."""
    layout = sft_lines(options.fmt)
    pick = sft_rule(options.ablation, include_bias=options.include_bias, use_relabels=options.use_relabels,
                    reviewed_only=options.reviewed_only)
    reflections = {"reflected": "latest", "curated": "reviewed"}.get(options.ablation)
    source = Source(options.scope, reflections=reflections, review=options.ablation == "curated")

    def build(db: Database, length: LengthCheck, rows: list[SourceRow]) -> Block:
        team = block_decisions(db, rows) if source.review else {}
        edits = block_edits(db, rows) if source.review else {}
        block = BlockBuilder(block_reasons(team, rows))
        encoded, take, leave_out = layout.encoded, block.take, block.leave_out
        counter, limit = length.counter, length.max_tokens
        measure_later = []  # with a tokenizer: lengths are counted per block, in one call
        for row in rows:
            if row.conflict:
                settled = settle(row, options.policy, team.get(row.id, ()))
                if isinstance(settled, str):
                    leave_out(row.id, settled)
                    continue
                row = settled
            target = pick(row)
            if isinstance(target, str):
                leave_out(row.id, target)
                continue
            if target.source == "edit":
                target = routed(target, edit_ratio(row, edits), options.route_small)
            line, estimate = encoded(row.id, row.dataset, row.source_id, row.premise, row.hypothesis, target.thought,
                                     target.label, limit)
            if counter is not None:
                measure_later.append((row, target, line))
            elif estimate > limit:
                leave_out(row.id, "too_long")
            else:
                take(row, line, target.label, target.source, target.model)
        if measure_later:
            texts = [(r.premise, r.hypothesis, t.thought, t.label) for r, t, _ in measure_later]
            for (row, target, line), length_ in zip(measure_later, counter.count(texts), strict=True):  # type: ignore[union-attr]
                if length_ > limit:
                    leave_out(row.id, "too_long")
                else:
                    take(row, line, target.label, target.source, target.model)
        return block.finish(len(rows))

    return Selector("sft", options.ablation, source, build, options.fmt, describe(options))
