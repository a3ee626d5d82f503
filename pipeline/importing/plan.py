"""What an import will do, decided from the options and the file's first line before the store is
opened: the format, the layout, the dataset and split (and where each came from)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.importing.errors import BadOption, ImportFailed
from pipeline.importing.layouts import (
    SEED,
    Layout,
    missing_columns,
    parse_columns,
    recognise,
)
from pipeline.importing.names import Names, choose_names
from pipeline.importing.readers import (
    check_path,
    detect_format,
    first_fields,
    first_line,
    header_problem,
    is_unicode,
)
from pipeline.importing.validate import Target
from pipeline.labels import LabelMap

FORMATS = ("auto", "csv", "tsv", "jsonl", "seed-thoughts", "seed-reflections")


@dataclass(frozen=True)
class ImportPlan:
    """A file checked and understood, ready to import."""

    path: Path
    format: str
    target: Target
    names: Names

    def layout_text(self) -> str:
        """How the file's columns (and labels) were read, for the import summary."""
        layout, target = self.target.layout, self.target
        if layout is SEED:
            return "seed"
        if layout.name == "--columns":
            return f"from --columns: {layout.describe()}"
        note = "" if layout.labels is None else (
            " (no --label-map needed)" if target.names_only else " (replaced by the --label-map given)")
        return f"{layout.name} (recognised): {layout.describe()}{note}"


def plan_import(path: str | Path, *, fmt: str = "auto", dataset: str | None = None, split: str | None = None,
                model: str | None = None, label_map: LabelMap | None = None, columns: str | None = None,
                unlabelled: bool = False) -> ImportPlan:
    """Check the options against the file; ImportFailed (the file) or BadOption (an option) says what is wrong."""
    path = Path(path)
    if fmt not in FORMATS:
        raise BadOption("--format", f"--format {fmt!r} is not one of {', '.join(FORMATS)}.")
    check_path(path)
    try:
        fmt = detect_format(path, first_line(path)) if fmt == "auto" else fmt
        seed = fmt.startswith("seed-")
        if seed and columns:
            raise BadOption("--columns", f"--columns applies to files of pairs (csv, tsv, jsonl); {path} is {fmt}.")
        fields = [] if seed else first_fields(path, fmt)
        layout = SEED if seed else _layout(path, fmt, fields, columns, unlabelled)
    except OSError as exc:  # unreadable (permissions), a special file, an I/O error
        raise ImportFailed(path, [], f"{path}: cannot read the file ({exc.strerror or exc}). Check its "
                           "permissions, or copy it somewhere readable.") from None
    names = choose_names(path, dataset, split)
    for option, value in (("--dataset", names.dataset), ("--split", names.split), ("--model", model)):
        if value is not None and not is_unicode(value):
            raise BadOption(option, f"the {option[2:]} name {value!r} is not valid UTF-8 text (a file name in "
                            f"another encoding?); pass {option} NAME.")
    names_only = layout.labels is not None and not label_map
    target = Target(names.dataset, names.split, label_map or layout.labels or {}, unlabelled and not seed, model,
                    layout, names_only)
    problem = header_problem(path, fields, target) if fmt in ("csv", "tsv") else None
    if problem:
        raise ImportFailed(path, [], problem)
    return ImportPlan(path, fmt, target, names)


def _layout(path: Path, fmt: str, fields: list[str], columns: str | None, unlabelled: bool) -> Layout:
    if not columns:
        return recognise(fields)
    layout = parse_columns(columns, unlabelled)
    missing = missing_columns(layout, fields, unlabelled)
    if missing:
        where = "header" if fmt in ("csv", "tsv") else "first record"
        raise BadOption("--columns", f"--columns names {', '.join(missing)}, which the {where} of {path} lacks "
                        f"(it has {', '.join(fields) or 'nothing'}); name columns the file has.")
    return layout
