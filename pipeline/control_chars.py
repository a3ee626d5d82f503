"""Which characters of model and dataset text must never reach a terminal raw, and how they are shown.

One definition for the review app (nlistral_tui/text.py) and the command line (pipeline/cli/common.py).
"""
from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides that can
# reorder what the reader sees. ESC starts escape sequences (retitling the terminal, clearing the
# screen, swallowing output until a BEL); C1 0x9b is a one-byte CSI for some terminals.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


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


def shown(text: str) -> str:
    """text with every unsafe character replaced by how it is shown (see visible)."""
    return UNSAFE.sub(lambda m: visible(m.group()), text) if UNSAFE.search(text) else text


def json_escaped(text: str) -> str:
    """JSON text with every unsafe character written as a \\uXXXX escape: the same JSON value, terminal-safe.

    Only valid for JSON as json.dumps writes it, where such characters can occur only inside strings.
    """
    return UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
