"""JSON objects in model text: read with numbers kept as written, found among prose, repaired.

A model's reply may hold its JSON answer inside code fences or prose, in near-JSON (single quotes,
unquoted keys, Python literals, trailing commas, unescaped quotes), or cut off by max_tokens. This
module finds every {...} span and reads what it can; pipeline.parsing decides what is an answer.
Numbers are read exactly (`0.99999999999999999` is not 1.0 here, a 5,000-digit integer does not
raise), and every scan is linear: it jumps between structural characters and refuses replies with
more than MAX_OBJECTS spans or MAX_DEPTH levels of nesting (Unreadable), so hostile text stays fast.
"""
from __future__ import annotations

import json
import re
from typing import Any, NamedTuple, Self

from pipeline.errors import PipelineError

MAX_OBJECTS = 100  # more {...} spans than any answer has: hostile or garbage, and costly to try one by one
MAX_DEPTH = 100  # nesting deeper than any answer: refused at once instead of repaired character by character


class Unreadable(PipelineError):
    """A reply refused as a whole (the message says why)."""


class Written(float):
    """A JSON number that is not a plain integer, with the text it was written as."""

    written: str

    def __new__(cls, text: str) -> Self:
        number = super().__new__(cls, float(text))
        number.written = text
        return number


class JsonObject(dict):  # type: ignore[type-arg]
    """A JSON object that remembers keys written twice with different values."""

    duplicates: tuple[str, ...] = ()


def _exact_int(text: str) -> int | float:
    """An integer as written; one over Python's int-conversion limit becomes a Written float (inf)."""
    try:
        return int(text)
    except ValueError:  # over sys.get_int_max_str_digits() digits: it used to crash generate
        return Written(text)


def _object(pairs: list[tuple[str, Any]]) -> JsonObject:
    """json's object hook: a JsonObject that notes keys written twice with different values."""
    obj = JsonObject()
    duplicates = []
    for key, value in pairs:
        if key in obj and obj[key] != value:
            duplicates.append(key)
        obj[key] = value
    if duplicates:
        obj.duplicates = tuple(duplicates)
    return obj


NOT_JSON = object()  # what try_loads returns for text that is not JSON (None is JSON's null)


def loads_exact(text: str) -> Any:
    """json.loads that keeps numbers as written: non-integers, and integers too long for int(), come
    back as Written floats; objects as JsonObject; control characters allowed in strings. Raises
    ValueError or RecursionError."""
    return json.loads(text, parse_float=Written, parse_int=_exact_int, parse_constant=Written,
                      object_pairs_hook=_object, strict=False)


def try_loads(text: str) -> Any:
    """loads_exact, or NOT_JSON."""
    try:
        return loads_exact(text)
    except (ValueError, RecursionError):
        return NOT_JSON


class Found(NamedTuple):
    """The JSON objects read from a reply, the text outside them, and the objects that were cut off."""

    objects: list[dict[str, Any]]
    outside: str  # prose and unreadable braces, code fences removed
    cut: list[tuple[dict[str, Any], str]]  # (object, its raw text) for objects closed by the repair


def find_objects(raw: str, problems: list[str]) -> Found:
    """Every JSON object that can be read from the text (outermost only, in order); notes what was
    repaired in problems. Raises Unreadable for a reply with over MAX_OBJECTS spans or MAX_DEPTH levels."""
    text = raw.strip()
    value = try_loads(text)
    if isinstance(value, str):  # double-encoded JSON
        inner = try_loads(value)
        if isinstance(inner, dict):
            problems.append("the JSON was encoded twice")
            return Found([inner], "", [])
    if isinstance(value, dict):
        return Found([value], "", [])
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        problems.append("the JSON was wrapped in a list")
        return Found(list(value), "", [])
    segments: list[str] = []
    outside: list[str] = []
    at = 0
    for m in _FENCE.finditer(text):
        if "{" in m.group(1):
            outside.append(text[at:m.start()])
            segments.append(m.group(1))
            at = m.end()
    outside.append(text[at:])
    if segments:
        problems.append("removed a code fence")
    else:
        segments, outside = [text], []
    found: list[dict[str, Any]] = []
    cut: list[tuple[dict[str, Any], str]] = []
    for segment in segments:
        at = 0
        chunks = _brace_chunks(segment)
        if len(chunks) > MAX_OBJECTS:
            raise Unreadable(f"the reply holds over {MAX_OBJECTS} {{...}} spans: not an answer")
        for start, end, closed in chunks:
            obj = _load_object(segment[start:end], closed, problems)
            if obj is not None:
                found.append(obj)
                if not closed:
                    cut.append((obj, segment[start:end]))
                outside.append(segment[at:start])
                at = end
        outside.append(segment[at:])
    rest = "\n".join(outside)
    if found and rest.strip():
        problems.append("ignored text around the JSON")
    return Found(found, rest, cut)


_FENCE = re.compile(r"```[ \t]*(?:json|JSON|javascript|js)?[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)


_STRUCTURE = re.compile(r"[{}\[\]\"']")
_IN_STRING = {'"': re.compile(r'[\\"]'), "'": re.compile(r"[\\']")}


def _brace_chunks(text: str) -> list[tuple[int, int, bool]]:
    """Top-level {...} spans as (start, end, closed) (strings respected); a span cut off by the end
    is returned unclosed. Jumps from one structural character to the next (long text stays fast)."""
    chunks: list[tuple[int, int, bool]] = []
    i, n = 0, len(text)
    while len(chunks) <= MAX_OBJECTS:
        start = text.find("{", i)
        if start < 0:
            break
        depth, j, quote, end = 0, start, None, -1
        while True:
            m = (_IN_STRING[quote] if quote else _STRUCTURE).search(text, j)
            if m is None:
                break
            j = m.start()
            ch = text[j]
            if quote:
                if ch == "\\":
                    j += 1
                elif _closes_string(text, j):
                    quote = None
            elif ch in "\"'":
                if _opens_string(text, j):
                    quote = ch
            elif ch in "{[":
                depth += 1
                if depth > MAX_DEPTH:
                    raise Unreadable(f"the reply nests JSON deeper than {MAX_DEPTH} levels: not an answer")
            else:
                depth -= 1
                if depth == 0:
                    end = j + 1
                    break
            j += 1
        if end < 0:
            chunks.append((start, n, False))
            break
        chunks.append((start, end, True))
        i = end
    return chunks


def _opens_string(text: str, i: int) -> bool:
    """A quote opens a string only where JSON expects a key or value (after { [ , : or space)."""
    k = i - 1
    while k >= 0 and text[k] in " \t\r\n":
        k -= 1
    return k < 0 or text[k] in "{[,:"


def _closes_string(text: str, i: int) -> bool:
    """A quote closes a string only when followed by , : } ] or the end (so "the speaker's" survives)."""
    k = i + 1
    while k < len(text) and text[k] in " \t\r\n":
        k += 1
    return k >= len(text) or text[k] in ",:}]"


def _load_object(chunk: str, closed: bool, problems: list[str]) -> dict[str, Any] | None:
    """The object in one {...} span, as written or repaired (the repairs noted in problems)."""
    if closed:
        value = try_loads(chunk)
        if value is not NOT_JSON:
            return value if isinstance(value, dict) else None
    fixed, notes = _repair(chunk, closed)
    value = try_loads(fixed)
    if not isinstance(value, dict):
        return None
    problems.extend(n for n in notes if n not in problems)
    return value


_BARE_KEY = re.compile(r"(\s*)([A-Za-z_][A-Za-z0-9_]{0,60})[ \t]{0,8}:")
_REPAIR_OUTSIDE = re.compile(r"[\"'{}\[\],]")
_REPAIR_INSIDE = {'"': re.compile(r'[\\"\n\t]'), "'": re.compile(r"[\\'\"\n\t]")}
_ESCAPED = {"\n": "\\n", "\t": "\\t", '"': '\\"'}


_PY_LITERAL = re.compile(r"(?<=[:\[,\s])(True|False|None)(?=\s*[,}\]])")
_JSON_LITERAL = {"True": "true", "False": "false", "None": "null"}
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _repair(chunk: str, closed: bool) -> tuple[str, list[str]]:
    """Rewrite near-JSON as JSON: quotes, unquoted keys, Python literals, trailing commas, unclosed
    strings and brackets. Copies the text between special characters in one piece."""
    out: list[str] = []
    notes: list[str] = []
    stack: list[str] = []
    quote: str | None = None
    i, n = 0, len(chunk)
    while i < n:
        m = (_REPAIR_INSIDE[quote] if quote else _REPAIR_OUTSIDE).search(chunk, i)
        if m is None:
            out.append(chunk[i:])
            break
        j = m.start()
        out.append(chunk[i:j])
        ch = chunk[j]
        i = j + 1
        if quote:
            if ch == "\\" and i < n:
                nxt = chunk[i]
                out.append("'" if nxt == "'" else ch + nxt)
                i += 1
            elif ch == quote and _closes_string(chunk, j):
                out.append('"')
                quote = None
            else:
                out.append(_ESCAPED.get(ch, ch))
            continue
        if ch in "\"'" and _opens_string(chunk, j):
            if ch == "'" and "single quotes" not in notes:
                notes.append("single quotes")
            quote = ch
            out.append('"')
            continue
        if ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
        out.append(ch)
        if ch in "{," and stack and stack[-1] == "}" and (key := _BARE_KEY.match(chunk, i)):
            if "unquoted keys" not in notes:
                notes.append("unquoted keys")
            out.append(f'{key.group(1)}"{key.group(2)}"')
            i = key.end(2)
    text = "".join(out)
    if quote:
        text += '"'
    if not closed:
        notes.append("truncated JSON was closed")
        text = _cut_tail(text)
        text += "".join(reversed(stack))
    literals = _PY_LITERAL.sub(lambda m: _JSON_LITERAL[m.group(1)], text)
    if literals != text:
        notes.append("Python literals")
        text = literals
    commas = _TRAILING_COMMA.sub(r"\1", text)
    if commas != text:
        notes.append("trailing commas")
        text = commas
    return text, [f"repaired {n}" if not n.startswith("truncated") else n for n in notes]


_CUT_VALUE = re.compile(r':[ \t\r\n]{0,50}[^\s"{}\[\],:]{1,60}\Z')  # a number or word that may have gone on
_HALF_KEY = re.compile(r',\s*"[^"]*"?\s*:?\s*\Z')


def _cut_tail(text: str) -> str:
    """Truncated JSON without a dangling half key (`, "thou`); a key with no value or a value that may
    have gone on (`"label": `, `"score": 4`) gets null."""
    stripped = text.rstrip()
    if stripped.endswith(":"):
        return stripped + " null"
    # Only the last 200 characters can hold a half key or value worth dropping; bounded regexes stay linear.
    head, tail = stripped[:-200], stripped[-200:]
    value = _CUT_VALUE.sub(": null", tail)
    if value != tail:
        return head + value
    return head + _HALF_KEY.sub("", tail)
