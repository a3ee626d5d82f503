"""Training length of a record: the model's tokenizer when one is given, else a conservative estimate.

The estimate, for a text without a tokenizer: each ASCII letter counts 1/3.4 of a token, a space
that follows a non-space counts nothing (it joins the next word's token), and everything else
counts one token per UTF-8 byte (digits, punctuation, newlines, repeated spaces, every byte of a
non-ASCII character); the total is rounded up. Calibrated with benchmarks/length_estimate.py
against the Mistral-7B-v0.3 tokenizer (the v3 SentencePiece model that mistral-common ships) on
7,121 training records (seed sample, demo data, RTE and SICK pairs): it was never below the true
count, which was at most 96.6 % of it (median 81.5 %). So a record the estimate accepts fits; the
price is that some records that would fit are left out (65 of 2,490 RTE records at 512 tokens,
none of the seed sample, whose longest record is 403 tokens). Pass a tokenizer for the exact count.
Runs of spaces are counted one token per repeated space although the tokenizer merges them: the
estimate errs on the long side there too.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from exports.errors import TokenizerLoadError
from exports.formats import cot_target, user_prompt
from exports.layout import LayoutError, layout_for

LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))
LETTERS_PER_TOKEN_X10 = 34  # 3.4 letters per token, kept as an integer ratio
_SPACE_RUNS = re.compile(rb" {2,}")
ESTIMATE_NAME = "estimate: ceil(ASCII letters / 3.4) + 1 per other UTF-8 byte, single spaces free"


class PartStats(NamedTuple):
    """What the estimate counts in a text: ASCII letters, and the bytes that count one token each."""

    letters: int
    others: int  # bytes that are neither letters nor single spaces (a space after a space counts)


def part_stats(text: str) -> PartStats:
    """The estimate's counts for a text (or a piece of one)."""
    data = text.encode()
    rest = data.translate(None, LETTERS)
    repeated = repeated_spaces(data) if b"  " in data else 0
    return PartStats(len(data) - len(rest), len(rest) - rest.count(b" ") + repeated)


def repeated_spaces(data: bytes) -> int:
    """Spaces that follow another space (each counts as a token)."""
    return sum(len(run) - 1 for run in _SPACE_RUNS.findall(data))


def tokens(letters: int, others: int) -> int:
    """The estimate from its two counts: letters / 3.4 rounded up, plus the bytes that count one each."""
    return (letters * 10 + LETTERS_PER_TOKEN_X10 - 1) // LETTERS_PER_TOKEN_X10 + others


def estimate_tokens(text: str) -> int:
    """The conservative token estimate of a whole text (module docstring)."""
    return tokens(*part_stats(text))


class TokenCounter:
    """Exact counts with a local Hugging Face tokenizer (transformers, local files only)."""

    def __init__(self, path: str):
        try:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as exc:  # noqa: BLE001  (transformers raises OSError, ValueError, ... for a bad folder)
            raise TokenizerLoadError(
                f"Cannot load a tokenizer from {path}: {exc}. Give --tokenizer a local folder with "
                "tokenizer.json or tokenizer.model (e.g. the model's folder), or leave it out to use "
                "the conservative estimate."
            ) from None
        try:
            self.layout = layout_for(self.tokenizer, path)
        except LayoutError as exc:
            raise TokenizerLoadError(f"{exc}. Or leave --tokenizer out to use the conservative estimate.") from None
        self.name = f"tokenizer: {path}"

    def count(self, rows: Sequence[tuple[str, str, str, int]]) -> list[int]:
        """Token counts of SFT rows (premise, hypothesis, thought, label) encoded exactly as training encodes them:
        through the model's own layout (exports.layout: the [INST] text for Mistral, else its chat template)."""
        if not rows:
            return []
        prompts = [user_prompt(premise, hypothesis) for premise, hypothesis, _, _ in rows]
        targets = [cot_target(thought, label) for _, _, thought, label in rows]
        return [len(ids) for ids in self.layout.full_ids(prompts, targets)]


class _Limits(Protocol):
    @property
    def max_tokens(self) -> int: ...
    @property
    def tokenizer(self) -> str | None: ...


@dataclass(frozen=True)
class LengthCheck:
    """The training-length limit and how lengths are measured (a tokenizer, or the estimate when None)."""

    max_tokens: int
    counter: TokenCounter | None

    @property
    def name(self) -> str:
        """How lengths are measured, for the plan and the manifest."""
        return self.counter.name if self.counter else ESTIMATE_NAME


def length_check(options: _Limits) -> LengthCheck:
    """The length check of an export's options (loads the tokenizer, if one is given)."""
    return LengthCheck(options.max_tokens, TokenCounter(options.tokenizer) if options.tokenizer else None)
