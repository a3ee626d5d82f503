"""Model and dataset text as literal Content: never read as markup, control characters made visible."""
from __future__ import annotations

from textual.content import Content

from pipeline.control_chars import UNSAFE as _UNSAFE
from pipeline.control_chars import shown, visible
from pipeline.prompts import label_name

__all__ = ["CONTROL_STYLE", "label_text", "literal", "one_line", "visible"]
CONTROL_STYLE = "reverse"


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
    flat = shown((text or "").replace("\n", " ").replace("\t", " "))
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"


def label_text(label: int | None) -> str:
    """A label as the app shows it: 1 -> '1 entailment', 0 -> '0 no-entailment', None -> 'unparsed'."""
    return f"{label} {label_name(label).replace(' ', '-')}" if label in (0, 1) else "unparsed"
