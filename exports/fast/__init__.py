"""The speed of an export, kept apart from its rules: the same bytes and counts, sooner.

- block: a run of consecutive examples selected at once (lines, per-example facts, left-outs), the
  unit both paths merge in id order; chunks cuts the rows into such runs.
- pool, worker: large exports select their blocks in worker processes that read one snapshot
  (messages through db.pipe, the protocol a large import's parser uses too).
- sft_layout: the SFT line layout of exports.lines compiled, with a one-pass length estimate.
"""
