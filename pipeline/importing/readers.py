"""Reading input files: encoding, format detection, default names, CSV and JSON Lines records."""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from db.examples import NewExample
from pipeline.importing.errors import BadRow, ImportFailed

_SPLIT_SUFFIX = re.compile(r"^(?P<name>.+?)[_.-](?P<split>train|dev|test|validation|val)$", re.I)
_STAGE_SUFFIX = re.compile(r"[_.-](thoughts?|reflections?)$", re.I)
PLAIN_LABELS = {"0": 0, "1": 1}
HEAD_BYTES = 1 << 16


class Record:
    """An input record and where it came from: a JSON object, or CSV values with the header.

    `index` counts the data rows (blank lines excluded): the source id of rows without an `id`.
    For CSV the dict and the raw text are built only when a row needs the slow path.
    """

    __slots__ = ("line", "index", "_data", "values", "names", "_raw")

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


def default_names(path: Path) -> tuple[str, str]:
    """Dataset and split from a file name: rte_dev.csv -> (rte, dev); sample_thoughts.json -> (sample, train)."""
    stem = _STAGE_SUFFIX.sub("", Path(path.name).stem)
    match = _SPLIT_SUFFIX.match(stem)
    if match:
        return match["name"], match["split"].lower()
    return stem or "default", "train"


def check_path(path: Path) -> None:
    """ImportFailed unless path is an existing file."""
    if not path.exists():
        raise ImportFailed(path, [], f"{path}: no such file. Check the path (it is relative to {Path.cwd()}).")
    if path.is_dir():
        raise ImportFailed(path, [], f"{path}: is a directory; give the path of a CSV or JSON Lines file.")


def text_lines(path: Path) -> Iterator[str]:
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


def read_head(path: Path) -> str:
    """The first lines of the file, enough to detect its format (encoding is checked by text_lines)."""
    check_path(path)
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    return head.decode("utf-8-sig", errors="replace")


def detect_format(path: Path, text: str) -> str:
    """csv by extension; otherwise by the fields of the first JSON record."""
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    first = next((ln for ln in text.split("\n") if ln.strip()), "")
    try:
        obj = json.loads(first)
    except json.JSONDecodeError:
        if first.lstrip().startswith("[") or first.strip() == "{":
            raise ImportFailed(path, [], f"{path}: this looks like one JSON document, not JSON Lines; "
                               "write one object per line.") from None
        raise ImportFailed(path, [], f"{path}: cannot tell the format: line 1 is neither a CSV file "
                           "(.csv) nor a JSON object. Pass --format.") from None
    if not isinstance(obj, dict):
        raise ImportFailed(path, [], f"{path}:1: expected a JSON object per line, found {type(obj).__name__}.")
    if "improved_thought_process" in obj or "error_analysis" in obj:
        return "seed-reflections"
    if "thought_process" in obj or "raw_response" in obj:
        return "seed-thoughts"
    return "jsonl"


def csv_records(path: Path, lines: Iterable[str], required: list[str], dataset: str, split: str,
                unlabelled: bool) -> Iterator[NewExample | Record | BadRow]:
    """CSV rows (lines as text_lines gives them): plain valid rows straight as NewExample (the fast
    path), the rest as records to check."""
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailed(path, [], f"{path}: the file is empty; expected a header premise,hypothesis,label.") from None
    except csv.Error as exc:
        raise ImportFailed(path, [], f"{path}:1: cannot read the CSV header: {exc}.") from None
    names = [h.strip() for h in header]
    missing = [name for name in required if name not in names]
    if missing:
        raise ImportFailed(path, [], f"{path}:1: the header lacks {', '.join(missing)} (it has "
                           f"{', '.join(names) or 'nothing'}). Fix: name the columns premise,hypothesis,label "
                           "(and optionally id)" + ("" if "label" not in missing else
                           ", or pass --unlabelled for data without gold labels") + ".")
    width, fast = len(names), "id" not in names
    ip, ih = names.index("premise"), names.index("hypothesis")
    il = None if unlabelled else names.index("label")
    start, index = reader.line_num + 1, 0
    rows = iter(reader)
    while True:
        try:
            for values in rows:
                if values:
                    if len(values) != width:
                        yield BadRow(start, f"the row has {len(values)} fields but the header has {width}",
                                     "quote fields that contain commas", csv_line(values))
                    else:
                        premise, hypothesis = values[ip], values[ih]
                        gold = None if il is None else PLAIN_LABELS.get(values[il], -1)
                        if fast and gold != -1 and premise.strip() and hypothesis.strip():
                            yield NewExample(start, dataset, split, str(index), premise, hypothesis, gold)
                        else:
                            yield Record(start, index, None, values=values, names=names)
                    index += 1
                start = reader.line_num + 1
            return
        except csv.Error as exc:
            yield BadRow(start, f"malformed CSV ({exc})", "close the quotes of this row")
            start, index = reader.line_num + 1, index + 1


def csv_line(values: list[str]) -> str:
    """One CSV row as text (for reports of rejected rows)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def jsonl_records(path: Path, lines: Iterable[str]) -> Iterator[Record | BadRow]:
    """One Record per non-blank line (lines as text_lines gives them), or a BadRow for a line that is
    not a JSON object."""
    index = -1
    for number, ending in enumerate(lines, start=1):
        line = ending.rstrip("\r\n")
        if not line.strip():
            continue
        index += 1
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield BadRow(number, f"malformed JSON ({exc.msg} at column {exc.colno})",
                         "write one complete JSON object per line", line)
            continue
        if not isinstance(obj, dict):
            yield BadRow(number, f"expected a JSON object, found {type(obj).__name__}",
                         "write one JSON object per line", line)
            continue
        yield Record(number, index, obj, line)
