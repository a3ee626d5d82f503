"""Which selector an export's options call for: the one place that tells SFT and DPO exports apart.

Looked up by the kind's name, so a worker process (exports.fast.worker), which gets the name and
the options, builds the same selector as the process that sent them.
"""
from __future__ import annotations

from exports import dpo, sft
from exports.options import DpoOptions, ExportOptions, SftOptions
from exports.selection import Selector


def selector_for(kind: str, options: ExportOptions) -> Selector:
    """How an export of this kind ("sft" or "dpo") with these options selects (KeyError for another kind)."""
    if kind == "sft" and isinstance(options, SftOptions):
        return sft.selector(options)
    if kind == "dpo" and isinstance(options, DpoOptions):
        return dpo.selector(options)
    raise KeyError(kind)

