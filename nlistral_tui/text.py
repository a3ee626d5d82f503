"""Model and dataset text as literal Content: never read as markup, control characters made visible."""
from __future__ import annotations

import re

from textual.content import Content

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides that can
# reorder what the reader sees.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
CONTROL_STYLE = "reverse"


def visible(ch: str) -> str:
    """How a control character is shown: its Control Pictures glyph (ESC is ␛), else \\xNN or <U+NNNN>."""
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    if code <= 0x9F:
        return f"\\x{code:02x}"
    return f"<U+{code:04X}>"


def literal(text: str | None, style: str = "") -> Content:
    """Text exactly as typed, as Content: markup-like text stays text, control characters become glyphs."""
    if not text:
        return Content("")
    parts: list[str | tuple[str, str]] = []
    last = 0
    for match in _UNSAFE.finditer(text):
        if match.start() > last:
            parts.append((text[last:match.start()], style) if style else text[last:match.start()])
        parts.append((visible(match.group()), f"{style} {CONTROL_STYLE}".strip()))
        last = match.end()
    if last == 0:
        return Content.styled(text, style) if style else Content(text)
    if last < len(text):
        parts.append((text[last:], style) if style else text[last:])
    return Content.assemble(*parts)


def one_line(text: str | None, width: int) -> str:
    """The start of text on one line (newlines and control characters made visible), cut to width."""
    flat = _UNSAFE.sub(lambda m: visible(m.group()), (text or "").replace("\n", " ").replace("\t", " "))
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"


def label_name(label: int | None) -> str:
    """1 -> '1 entailment', 0 -> '0 no-entailment', None -> 'unparsed'."""
    return {1: "1 entailment", 0: "0 no-entailment"}.get(label, "unparsed")  # type: ignore[arg-type]
