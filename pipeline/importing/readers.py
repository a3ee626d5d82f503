"""Reading input files: encoding, format detection, CSV / tab-separated and JSON Lines records."""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Collection, Generator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from db.examples import NewExample
from pipeline.importing.errors import BadRow, ImportFailed
from pipeline.json_in_text import loads_exact

if TYPE_CHECKING:
    from pipeline.importing.validate import Target

PLAIN_LABELS = {"0": 0, "1": 1}
# csv refuses fields over 131,072 characters by default; real premises can be longer. The limit
# stays finite so that a quote never closed is an error, not the rest of the file read as one field.
FIELD_LIMIT = 1 << 26
csv.field_size_limit(FIELD_LIMIT)
# Reading the first record to tell the format: a JSON Lines record may be long (whole documents as
# premises), but a file with no line ends at all is not read whole.
FIRST_LINE_LIMIT = 1 << 28
# Label values that hold no number json.loads may have rounded (read_json reads any other exactly).
_PLAIN_JSON = (int, str, bool, type(None))
# A JSON \u escape of a lone surrogate (D800-DFFF): decodes to text that is not Unicode.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class Record:
    """An input record and where it came from: a JSON object, or CSV values with the header.

    `index` counts the data rows (blank lines excluded): the source id of rows without an `id`.
    For CSV the dict and the raw text are built only when a row needs the slow path.
    """

    __slots__ = ("_data", "_raw", "index", "line", "names", "values")

    def __init__(self, line: int, index: int, data: dict[str, Any] | None, raw: str = "",
                 values: list[str] | None = None, names: list[str] | None = None):
        self.line, self.index, self._data, self._raw = line, index, data, raw
        self.values, self.names = values, names

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = dict(zip(self.names or [], self.values or []))
        return self._data

    @property
    def raw(self) -> str:
        return self._raw if self.values is None else csv_line(self.values)


def check_path(path: Path) -> None:
    """ImportFailed unless path is an existing file."""
    if not path.exists():
        raise ImportFailed(path, [], f"{path}: no such file. Check the path (it is relative to {Path.cwd()}).")
    if path.is_dir():
        raise ImportFailed(path, [], f"{path}: is a directory; give the path of a CSV or JSON Lines file.")


def text_lines(path: Path) -> Generator[str, None, None]:
    """The file's lines, decoded as they are read (UTF-8, a BOM dropped), line ends kept.

    Only "\\n", "\\r\\n" and "\\r" end a line (as csv wants, and as JSON Lines means: JSON strings
    may hold U+2028 and the like raw). Bad UTF-8 raises ImportFailed naming the line.
    """
    check_path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            yield from fh
    except UnicodeDecodeError:
        _raise_encoding_error(path)
        raise


def line_count(path: Path) -> int | None:
    """How many lines the file has (for a progress bar), or None if it cannot be read."""
    try:
        with path.open("rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return None


def _raise_encoding_error(path: Path) -> None:
    """ImportFailed naming the first line of path that is not valid UTF-8 (the stream decoder knows no lines)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFailed(
            path, [], f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}). "
            "Fix: re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`."
        ) from None


def first_line(path: Path) -> str:
    """The file's first non-blank line, whole however long (encoding is checked by text_lines)."""
    check_path(path)
    with path.open("rb") as fh:
        while True:
            line = fh.readline(FIRST_LINE_LIMIT)
            if not line or line.strip():
                return line.decode("utf-8-sig", errors="replace").rstrip("\r\n")


def detect_format(path: Path, first: str) -> str:
    """csv / tsv by extension; otherwise by the first line: JSON Lines (which kind by its fields), or tab-separated."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    try:
        obj = read_json(first)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, RecursionError) and first.lstrip().startswith("{"):
            return "jsonl"  # a record nested too deep: rejected naming its line, as any other bad record
        if first.lstrip().startswith("[") or first.strip() == "{":
            raise ImportFailed(path, [], f"{path}: this looks like one JSON document, not JSON Lines; "
                               "write one object per line.") from None
        if "\t" in first:  # SNLI and MultiNLI ship tab-separated .txt files
            return "tsv"
        raise ImportFailed(path, [], f"{path}: cannot tell the format: line 1 is neither a CSV file "
                           "(.csv), a tab-separated one, nor a JSON object. Pass --format.") from None
    if not isinstance(obj, dict):
        raise ImportFailed(path, [], f"{path}:1: expected a JSON object per line, found {json_kind(obj)}.")
    if "improved_thought_process" in obj or "error_analysis" in obj:
        return "seed-reflections"
    if "thought_process" in obj or "raw_response" in obj:
        return "seed-thoughts"
    return "jsonl"


def first_fields(path: Path, fmt: str) -> list[str]:
    """The column names of a csv / tsv file (stripped), or the fields of a JSON Lines file's first record."""
    lines = text_lines(path)
    try:
        if fmt in ("csv", "tsv"):
            try:
                return [h.strip() for h in next(_reader(lines, fmt))]
            except StopIteration:
                return []
            except csv.Error as exc:
                raise ImportFailed(path, [], f"{path}:1: cannot read the header: {exc}.") from None
        for rec in jsonl_records(path, lines):
            return list(rec.data) if isinstance(rec, Record) else []
        return []
    finally:
        lines.close()


def _reader(lines: Iterable[str], fmt: str) -> Any:
    # Tab-separated NLI files (GLUE, SNLI, MultiNLI) have no quoting: a quote is text.
    if fmt == "tsv":
        return csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    return csv.reader(lines)


def header_problem(path: Path, names: list[str], target: Target) -> str | None:
    """Why a csv / tsv header cannot be imported under target (a column missing or named twice), or None."""
    if not names:
        return f"{path}: the file is empty; expected a header premise,hypothesis,label."
    layout = target.layout
    needed = [layout.premise, layout.hypothesis] + ([] if target.unlabelled else [layout.label])
    missing = [name for name in needed if name not in names]
    if missing:
        what = ("premise,hypothesis,label (and optionally id)" if layout.name != "--columns"
                else "the columns --columns names")
        return (f"{path}:1: the header lacks {', '.join(missing)} (it has {', '.join(names) or 'nothing'}). "
                f"Fix: name the columns {what}, or pass --columns premise=COL,hypothesis=COL,label=COL[,id=COL]"
                + ("" if layout.label not in missing else ", or --unlabelled for data without gold labels") + ".")
    used = needed + ([layout.id] if layout.id else [])
    twice = [name for name in dict.fromkeys(used) if names.count(name) > 1]
    if twice:
        where = "; ".join(f"{name} in columns " + " and ".join(str(i + 1) for i, n in enumerate(names) if n == name)
                          for name in twice)
        return (f"{path}:1: the header names a column twice ({where}); only one of them could be imported. "
                "Fix: rename or remove the other column.")
    return None


def csv_records(path: Path, lines: Iterable[str], target: Target, fmt: str = "csv",
                ) -> Iterator[NewExample | Record | BadRow]:
    """CSV (or tab-separated) rows, lines as text_lines gives them: plain valid rows straight as
    NewExample (the fast path), the rest as records to check."""
    reader = _reader(lines, fmt)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailed(path, [], f"{path}: the file is empty; expected a header premise,hypothesis,label."
                           ) from None
    except csv.Error as exc:
        raise ImportFailed(path, [], f"{path}:1: cannot read the header: {exc}.") from None
    names = [h.strip() for h in header]
    problem = header_problem(path, names, target)
    if problem:
        raise ImportFailed(path, [], problem)
    layout, dataset, split = target.layout, target.dataset, target.split
    width, fast, labels = len(names), layout.id not in names, target.exact_labels
    ip, ih = names.index(layout.premise), names.index(layout.hypothesis)
    il = None if target.unlabelled else names.index(layout.label)
    split_fix = "quote fields that contain commas" if fmt == "csv" else \
        "remove the tab inside the text (tab-separated files have no quoting)"
    start, index = reader.line_num + 1, 0
    rows = iter(reader)
    while True:
        try:
            for values in rows:
                if values:
                    if len(values) != width:
                        end = reader.line_num
                        # A row that runs over several lines and comes out short: a quote opened and
                        # never closed took the line breaks (and the next rows) into one field.
                        unclosed = fmt == "csv" and end > start and len(values) < width
                        yield BadRow(start, f"the row has {len(values)} fields but the header has {width}" + (
                                     f" (it runs on to line {end}: a quote never closed?)" if unclosed else ""),
                                     "close the quotes of this row" if unclosed else split_fix, csv_line(values))
                    else:
                        premise, hypothesis = values[ip], values[ih]
                        gold = None if il is None else labels.get(values[il], -1)
                        if fast and gold != -1 and premise.strip() and hypothesis.strip():
                            yield NewExample(start, dataset, split, str(index), premise, hypothesis, gold)
                        else:
                            yield Record(start, index, None, values=values, names=names)
                    index += 1
                start = reader.line_num + 1
            return
        except csv.Error as exc:
            if "field limit" in str(exc):
                yield BadRow(start, f"a field longer than {FIELD_LIMIT:,} characters (a quote never closed?)",
                             "close the quotes of this row, or shorten the text")
            else:
                yield BadRow(start, f"malformed CSV ({exc})", "close the quotes of this row")
            start, index = reader.line_num + 1, index + 1


def file_records(path: Path, fmt: str, target: Target) -> Iterator[NewExample | Record | BadRow]:
    """The records of a file of format fmt, read for target (csv_records or jsonl_records)."""
    lines = text_lines(path)
    if fmt in ("csv", "tsv"):
        return csv_records(path, lines, target, fmt)
    return jsonl_records(path, lines, target.label_fields)


def csv_line(values: list[str]) -> str:
    """One CSV row as text (for reports of rejected rows)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def read_json(line: str, labels: Collection[str] = ()) -> Any:
    """One JSON value, its numbers as written where that matters: json.loads (fast), read again with
    json_in_text.loads_exact when a label field holds a number that is not an integer, or a list or
    object that may (so `0.99999999999999999` is not 1.0), or the line an integer too long for int().
    Raises ValueError (json.JSONDecodeError: not JSON) or RecursionError (nested too deep)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        raise
    except ValueError:  # an integer over Python's int-conversion limit (4,300 digits)
        return loads_exact(line)
    if type(obj) is dict:
        for key in labels:  # a loop, not any(): this runs for every line of a large file
            if type(obj.get(key)) not in _PLAIN_JSON:
                return loads_exact(line)
    return obj


def jsonl_records(path: Path, lines: Iterable[str], labels: Collection[str] = ()) -> Iterator[Record | BadRow]:
    """One Record per non-blank line (lines as text_lines gives them), or a BadRow for a line that is
    not a JSON object; the numbers of the labels fields are kept as written (read_json)."""
    index = -1
    for number, ending in enumerate(lines, start=1):
        line = ending.rstrip("\r\n")
        if not line.strip():
            continue
        index += 1
        try:
            obj = read_json(line, labels)
            problem = _not_text(obj, line) if isinstance(obj, dict) else None
        except ValueError as exc:
            where = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            yield BadRow(number, f"malformed JSON ({getattr(exc, 'msg', exc)}{where})",
                         "write one complete JSON object per line", line)
            continue
        except RecursionError:
            yield BadRow(number, "the JSON is nested too deeply to read (about a thousand levels of [ or {)",
                         "write each record as a flat JSON object: premise, hypothesis and label as text or "
                         "numbers", line)
            continue
        if not isinstance(obj, dict):
            yield BadRow(number, f"expected a JSON object, found {json_kind(obj)}",
                         "write one JSON object per line", line)
            continue
        if problem:
            yield BadRow(number, problem, "write the character itself, or both halves of its surrogate pair "
                         "(text is stored exactly as given, so it cannot be repaired here)", line)
            continue
        yield Record(number, index, obj, line)


def json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words (a number read as written is a float subclass, not a "Written")."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else "a boolean"
    for kind, name in ((str, "text"), ((int, float), "a number"), (list, "a list"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _not_text(obj: dict[str, Any], line: str) -> str | None:
    """Why a record cannot be stored as text (a field holding a lone surrogate escape), or None."""
    if "\\u" not in line or not _SURROGATE_ESCAPE.search(line):
        return None
    key = next((k for k, v in obj.items() if not is_unicode(k) or not is_unicode(v)), None)
    return None if key is None else f"field {key!r} holds a lone surrogate escape (\\ud800-\\udfff), which is not text"


def is_unicode(value: object) -> bool:
    """Whether every text in a JSON value can be stored (encoded as UTF-8): no lone surrogates."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(is_unicode(v) for v in value)
    if isinstance(value, dict):
        return all(is_unicode(k) and is_unicode(v) for k, v in value.items())
    return True
