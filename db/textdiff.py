"""Word-level diff between two texts (the flawed thought and its improvement, or an edit)."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True)
class Span:
    """A run of text that is equal in both, only in the old text, or only in the new one."""

    op: str  # "equal" | "delete" | "insert"
    text: str


def word_diff(old: str, new: str) -> list[Span]:
    """Spans that turn old into new, compared word by word (whitespace kept as typed)."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    spans: list[Span] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            spans.append(Span("equal", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            spans.append(Span("delete", "".join(a[i1:i2])))
        if j2 > j1:
            spans.append(Span("insert", "".join(b[j1:j2])))
    return spans


def diff_text(old: str, new: str) -> str:
    """A plain-text rendering of word_diff: [-removed-] and {+added+}, as git diff --word-diff."""
    out = []
    for span in word_diff(old, new):
        if span.op == "equal":
            out.append(span.text)
        elif span.op == "delete":
            out.append(f"[-{span.text}-]")
        else:
            out.append(f"{{+{span.text}+}}")
    return "".join(out)


@dataclass(frozen=True)
class EditSize:
    """How much an edit changed: the word-level edit distance from the text it replaced, and that text's length."""

    words: int  # whole words inserted, deleted or replaced (Levenshtein distance over words)
    of: int  # words in the text the edit replaced

    @property
    def ratio(self) -> float:
        """words / of (an edit of an empty text: words, so any change counts as large)."""
        return self.words / max(self.of, 1)


def edit_size(old: str, new: str) -> EditSize:
    """The word-level edit distance of old -> new (words split on whitespace, compared exactly)."""
    a, b = old.split(), new.split()
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    x, y = a[start:len(a) - end], b[start:len(b) - end]
    previous = list(range(len(y) + 1))
    for i, word in enumerate(x, 1):
        current = [i]
        for j, other in enumerate(y, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other)))
        previous = current
    return EditSize(previous[-1], len(a))
