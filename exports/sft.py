"""SFT exports: one training row per selected example, in the [INST] text or chat-messages layout.

The selection rules are in exports.rules (module docstring); duplicates, length and lineage in
exports.engine. Headless: the CLI (`nlistral export sft`) and the review app's export screen are
thin layers over plan_sft and write_sft.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sqlite_utils import Database

from exports.engine import Progress, Selection, Selector, chunks, plan_with, write_with
from exports.lineage import Manifest
from exports.lines import SftLines, sft_text
from exports.options import SftOptions
from exports.rules import sft_target
from exports.source import source_query, stream_rows
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


def _select(options: SftOptions) -> Selector:
    layout = SftLines(options.fmt)
    reflections = {"reflected": "latest", "curated": "reviewed"}.get(options.ablation)
    sql, args = source_query(options.splits, options.datasets, reflections=reflections,
                             review=options.ablation == "curated")
    flags = {"include_bias": options.include_bias, "use_relabels": options.use_relabels,
             "reviewed_only": options.reviewed_only}

    def lines(selection: Selection) -> Iterator[str]:
        tally, counter, limit = selection.tally, selection.length.counter, selection.length.max_tokens
        for chunk in chunks(stream_rows(selection.db, sql, args)):
            built = []
            for row in chunk:
                target = sft_target(row, options.ablation, **flags)
                if type(target) is str:
                    tally.leave_out(row.id, target)
                    continue
                line, estimate = layout.line_and_estimate(row.id, row.premise, row.hypothesis, target.thought,
                                                          target.label)
                built.append((row, target, line, estimate))
            if counter is not None:
                lengths = counter.count([sft_text(r.premise, r.hypothesis, t.thought, t.label) for r, t, _, _ in built])
            else:
                lengths = [b[3] for b in built]
            tally.considered += len(chunk)
            for (row, target, line, _), length in zip(built, lengths):
                if length > limit:
                    tally.leave_out(row.id, "too_long")
                elif tally.admit(row):
                    tally.add(target.label, target.source, target.model, row)
                    yield line
            selection.report()

    return lines


def plan_sft(db: Database, options: SftOptions, progress: Progress | None = None) -> ExportPlan:
    """The counts an SFT export with these options would have, without writing anything."""
    return plan_with(db, options, "sft", options.ablation, _select(options), progress)


def write_sft(db: Database, options: SftOptions, out: Path | None = None, hf_dir: Path | None = None,
              progress: Progress | None = None) -> Manifest:
    """Write an SFT export to out (JSON Lines) or hf_dir (a datasets folder), with its manifest and table row."""
    return write_with(db, options, "sft", options.ablation, options.fmt, describe(options), _select(options),
                      out, hf_dir, progress)
