"""SFT exports: one training row per selected example, in the [INST] text or chat-messages layout.

The selection rules are in exports.rules (module docstring); blocks, duplicates and lineage in
exports.engine. Headless: the CLI (`nlistral export sft`) and the review app's export screen are
thin layers over plan_sft and write_sft.
"""
from __future__ import annotations

from pathlib import Path

from sqlite_utils import Database

from exports.block import Block, BlockBuilder
from exports.engine import (
    LengthCheck,
    OnWait,
    Progress,
    Selector,
    plan_with,
    write_with,
)
from exports.lineage import Manifest
from exports.lines import sft_lines, sft_text
from exports.options import SftOptions
from exports.rules import SourceRow, sft_rule
from exports.source import Source
from exports.tally import ExportPlan

RULE_TEXT = {
    "correct-only": "the thoughts whose label equals gold",
    "reflected": "the thoughts whose label equals gold, plus for the others the latest reflection of the "
                 "thought when its label equals gold (reflections arguing the other label are left out)",
    "unmodified": "every parsed thought as generated, wrong labels included",
    "curated": "review decisions applied: edits as edited, rejected left out, bias-flagged left out unless "
               "include_bias, relabels only with use_relabels, pending by the reflected rule unless "
               "reviewed_only, the chosen reflection version where one was chosen",
}


def describe(options: SftOptions) -> str:
    """The selection rule of these options in words (for the manifest, the CLI and the export screen)."""
    flags = [name for name in ("include_bias", "use_relabels", "reviewed_only") if getattr(options, name)]
    scope = ", ".join(options.splits) + (f" of {', '.join(options.datasets)}" if options.datasets else "")
    return (f"{options.ablation}: {RULE_TEXT[options.ablation]}" + (f" [{', '.join(flags)}]" if flags else "")
            + f"; splits {scope}; at most {options.max_tokens} tokens; duplicates written once")


def selector(options: SftOptions) -> Selector:
    """How an SFT export with these options reads its examples and selects a block of them."""
    layout = sft_lines(options.fmt)
    pick = sft_rule(options.ablation, include_bias=options.include_bias, use_relabels=options.use_relabels,
                    reviewed_only=options.reviewed_only)
    source = Source(options.splits, options.datasets, reflections={"reflected": "latest", "curated": "reviewed"}.get(
        options.ablation), review=options.ablation == "curated")

    def build(db: Database, length: LengthCheck, rows: list[SourceRow]) -> Block:
        block = BlockBuilder()
        encoded, take, leave_out = layout.encoded, block.take, block.leave_out
        counter, limit = length.counter, length.max_tokens
        measure_later = []  # with a tokenizer: lengths are counted per block, in one call
        for row in rows:
            target = pick(row)
            if isinstance(target, str):
                leave_out(row.id, target)
                continue
            line, estimate = encoded(row.id, row.dataset, row.source_id, row.premise, row.hypothesis, target.thought,
                                     target.label, limit)
            if counter is not None:
                measure_later.append((row, target, line))
            elif estimate > limit:
                leave_out(row.id, "too_long")
            else:
                take(row, line, target.label, target.source, target.model)
        if measure_later:
            texts = [sft_text(r.premise, r.hypothesis, t.thought, t.label) for r, t, _ in measure_later]
            for (row, target, line), length_ in zip(measure_later, counter.count(texts), strict=True):  # type: ignore[union-attr]
                if length_ > limit:
                    leave_out(row.id, "too_long")
                else:
                    take(row, line, target.label, target.source, target.model)
        return block.finish(len(rows))

    return Selector("sft", options.ablation, source, build)


def plan_sft(db: Database, options: SftOptions, progress: Progress | None = None,
             on_wait: OnWait | None = None) -> ExportPlan:
    """The counts an SFT export with these options would have, without writing anything."""
    return plan_with(db, options, selector(options), progress, on_wait)


def write_sft(db: Database, options: SftOptions, out: Path | None = None, hf_dir: Path | None = None,
              progress: Progress | None = None, *, overwrite: bool = False, on_wait: OnWait | None = None) -> Manifest:
    """Write an SFT export to out (JSON Lines) or hf_dir (a datasets folder), with its manifest and table row.

    An existing target is replaced only with overwrite; on_wait is told each time a write waits for another
    process's lock (exports.engine.write_with)."""
    return write_with(db, options, selector(options), options.fmt, describe(options), out, hf_dir, progress,
                      overwrite=overwrite, on_wait=on_wait)
