"""The grounding check: does a thought quote text, or name a number, that the pair itself does not contain?

A thought (or a reflection's corrected thought) that puts text in quotes ("...", '...', or curly quotes)
which is not in the premise or the hypothesis gets the flag `ungrounded_quote`; one that names a number
(written in digits) found in neither gets `ungrounded_number`. Quotes are compared case-, whitespace- and
punctuation-insensitively ("A man, sleeping" matches "a man sleeping"); a number matches the same value
in digits or as a number word ("2" matches "two", "1,000" matches "1000"). Step markers ("step 2", "2."
at the start of a sentence) and labels ("label 1") are the thought's own structure, not claims about the
pair, and are not checked. A reflection's error analysis is not checked: it quotes the flawed thought.

The check lives in db/ because migration m014 computes it for rows stored before it existed; generate,
reflect, import and the local backend store through db.generations.add_generations, which sets it.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

QUOTE = "ungrounded_quote"
NUMBER = "ungrounded_number"
FLAGS = (QUOTE, NUMBER)

# A quoted span: the opening mark at the start or after a space or an opening bracket, the closing one
# before the end, a space or punctuation, and no line break inside. A single quote between letters is an
# apostrophe ("don't", "John's"), never a quote.
_QUOTES = re.compile(
    r'"([^"\n]+)"'
    r"|“([^”\n]+)”"
    r"|‘([^’\n]+)’"
    r"|(?:(?<=^)|(?<=[\s(\[{]))'([^'\n]+?[^\s'])'(?=$|[\s.,;:!?)\]}])",
)
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w])")
# Not claims about the pair: "step 2", "label 1", and "2." / "2)" opening a sentence or a line.
_NAME = r"\b(?:steps?|labels?|predicted_label)(?:\s+(?:is|was|of|=)|\s*[:=#])?\s*"
_NAMED = re.compile(_NAME + "$", re.IGNORECASE)  # what comes before a step or label number
_DIGITS = re.compile(r"\d+")
_OPENING = re.compile(r"(?:^|[.!?\n]\s*)$")
_NOT_WORD = re.compile(r"[\W_]+")
_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
          "seventeen eighteen nineteen twenty")
_WORDS: dict[str, float] = {w: i for i, w in enumerate(_UNITS.split())}
_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
               "hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000,
               "dozen": 12, "first": 1, "second": 2, "third": 3, "half": 0.5, "once": 1, "twice": 2})


@dataclass(frozen=True)
class Finding:
    """One ungrounded quote or number: the flag and where it is in the checked text (start, end)."""

    flag: str
    start: int
    end: int


def _squash(text: str) -> str:
    """Lower case, letters and digits only, single spaces: what quotes are compared on."""
    return " ".join(_NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split())


def _value(whole: str, fraction: str | None) -> float:
    return float(whole.replace(",", "") + ("." + fraction if fraction else ""))


def _numbers(text: str) -> set[float]:
    """Every number a text names, in digits or as a number word."""
    found = {_value(m.group(1), m.group(2)) for m in _NUMBER.finditer(text)}
    words = re.findall(r"[a-z]+", text.casefold())
    found.update(_WORDS[w] for w in words if w in _WORDS)
    found.update(_WORDS[w] + 0.5 for w, *rest in zip(words, words[1:], words[2:], words[3:])
                 if w in _WORDS and rest == ["and", "a", "half"])  # "four and a half" is 4.5
    return found


def findings(text: str | None, premise: str, hypothesis: str) -> list[Finding]:
    """The ungrounded quotes and numbers of `text` against the pair, in text order."""
    if not text:
        return []
    out: list[Finding] = []
    quotes = list(_QUOTES.finditer(text))
    if quotes:  # the pair is normalised only when there is something to look up in it
        source = f" {_squash(premise)} | {_squash(hypothesis)} "
        for m in quotes:
            quoted = _squash(next(g for g in m.groups() if g is not None))
            if quoted and f" {quoted} " not in source:
                out.append(Finding(QUOTE, m.start(), m.end()))
    claims = [m for m in _NUMBER.finditer(text) if not _structure(text, m) or _in_quote(out, m.start())]
    if claims:
        known = _numbers(premise) | _numbers(hypothesis)
        out += [Finding(NUMBER, m.start(), m.end()) for m in claims if _value(m.group(1), m.group(2)) not in known]
    return sorted(out, key=lambda f: (f.start, f.end))


def _structure(text: str, m: re.Match[str]) -> bool:
    """Whether the number is the thought's own structure: a step or label number, or an enumeration mark."""
    before = max(0, m.start() - 24)
    if _NAMED.search(text, before, m.start()):
        return True
    return text[m.end():m.end() + 1] in (".", ")") and _OPENING.search(text, before, m.start()) is not None


def _in_quote(found: list[Finding], at: int) -> bool:
    return any(f.flag == QUOTE and f.start <= at < f.end for f in found)


def _maybe_claim(text: str) -> bool:
    """Whether the text has a number that is not a step or label number (a cheap first look; the full check
    decides)."""
    return any(not _NAMED.search(text, max(0, m.start() - 24), m.start()) for m in _DIGITS.finditer(text))


def flags(text: str | None, premise: str, hypothesis: str) -> list[str]:
    """The grounding flags of `text` against the pair (sorted names, each once)."""
    if not text or ('"' not in text and "'" not in text and "“" not in text and "‘" not in text
                    and not _maybe_claim(text)):
        return []  # the common case (no quotes, no numbers but step numbers), decided in C
    return sorted({f.flag for f in findings(text, premise, hypothesis)})


CHECKED_KINDS = ("thought", "reflection", "blind_reflection")  # generations whose thought_process is a target


def ground(db: Database, where: str, args: Iterable[Any] = ()) -> int:
    """Set the grounding flags of the checked generations `where` selects (over `generations g`), keeping their
    other flags; returns how many generations changed. Call inside the write that stored them."""
    placeholders = ", ".join("?" * len(CHECKED_KINDS))
    rows = db.execute(
        f"SELECT g.id, g.flags, g.thought_process, e.premise, e.hypothesis FROM generations g "
        f"JOIN examples e ON e.id = g.example_id WHERE g.kind IN ({placeholders}) "
        f"AND g.thought_process IS NOT NULL AND ({where})", [*CHECKED_KINDS, *args])
    changed = []
    for gen_id, stored, text, premise, hypothesis in rows:
        found = flags(text, premise, hypothesis)
        old = json.loads(stored or "[]")
        new = sorted({*(f for f in old if f not in FLAGS), *found})
        if new != old:
            changed.append((json.dumps(new), gen_id))
    db.conn.executemany("UPDATE generations SET flags = ? WHERE id = ?", changed)
    return len(changed)
