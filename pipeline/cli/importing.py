"""`nlistral import`: a thin command over pipeline.importing (one file, one transaction)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from db.errors import NlistralError
from pipeline.cli.common import DEFAULT_DB_PATH, DbOption, ProgressBar, console, fail, open_store

if TYPE_CHECKING:
    from sqlite_utils import Database


def register(app: typer.Typer) -> None:
    """Add import to the CLI."""
    app.command("import")(import_cmd)


def import_cmd(
    path: Annotated[Path, typer.Argument(help="A CSV, tab-separated or JSON Lines file.", show_default=False)],
    db: DbOption = DEFAULT_DB_PATH,
    dataset: Annotated[str | None, typer.Option(help="Dataset name [default: the file name without its "
                       "split word, e.g. rte_dev.csv -> rte]")] = None,
    split: Annotated[str | None, typer.Option(help="Split name [default: a split word anywhere in the file "
                     "name (train; dev, validation, valid, val, trial -> dev; test), else train]")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, csv, tsv, jsonl, seed-thoughts or seed-reflections; "
               "auto decides by extension and by the first record.")] = "auto",
    columns: Annotated[str | None, typer.Option(help="Which columns (or JSON fields) hold what, for a layout "
                       "that is not recognised: premise=COL,hypothesis=COL,label=COL[,id=COL]. Recognised "
                       "without it: premise/hypothesis/label[/id], SNLI/MultiNLI, ANLI.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name to record on imported thoughts or "
                     "reflections [default: the record's model field, else 'unknown'].")] = None,
    label_map: Annotated[str | None, typer.Option(help="Map labels to 0/1: 'nli' (entailment=1; "
                         "neutral, contradiction, not_entailment=0), 'nli-numbered' (Hugging Face's numbering: "
                         "0 entailment=1; 1 neutral, 2 contradiction=0; -1 no gold label, skipped) or pairs like "
                         "'yes=1,no=0' or '0=1,1=0,2=0' (NAME=- skips rows with that label). A map that names "
                         "a number reads every number through it, 0 and 1 included. Without it only 0 and 1 "
                         "are accepted (and the names of a recognised SNLI, MultiNLI or ANLI layout).")] = None,
    unlabelled: Annotated[bool, typer.Option(help="The file has no gold labels (e.g. a hidden test "
                          "set); any label column is ignored.")] = False,
    skip_bad: Annotated[bool, typer.Option(help="Import the good rows and write the rejected ones, "
                        "with reasons, to a report file.")] = False,
    report: Annotated[Path | None, typer.Option(help="Where --skip-bad writes rejected rows "
                      "[default: ./FILE.rejected.jsonl].")] = None,
) -> None:
    """Import NLI pairs (CSV, TSV, JSON Lines) or the original pipeline's thought / reflection files.

    One file is one transaction: on bad input nothing is written and the error names the file,
    the line and the fix. Importing the same file again adds nothing. Prints the dataset, split
    and layout chosen, and where each came from.
    """
    from pipeline.importing import check_report, default_report_path, import_file, plan_import
    from pipeline.importing.readers import line_count
    from pipeline.labels import LabelError, parse_label_map
    from pipeline.views.importing import import_lines

    try:
        mapping = parse_label_map(label_map)
    except LabelError as exc:
        raise typer.BadParameter(str(exc), param_hint="--label-map") from None
    # Everything that can be checked is checked before the store is opened (or created).
    plan_import(path, fmt=fmt, dataset=dataset, split=split, model=model, label_map=mapping, columns=columns,
                unlabelled=unlabelled)
    if skip_bad or report is not None:
        check_report(report or default_report_path(path), store=db, source=path)
    created = not db.exists()
    store = open_store(db)
    lines = line_count(path)
    told: list[str] = []
    try:
        with ProgressBar(f"importing {path.name} (lines)") as bar:
            def waiting() -> None:  # said once, however many busy timeouts the wait lasts
                if not told:
                    told.append(f"waiting: another process is writing to {db}; the import starts when it is "
                                "done (Ctrl-C to stop).")
                    bar.note(told[0])

            result = import_file(store, path, dataset=dataset, split=split, fmt=fmt, model=model, label_map=mapping,
                                 columns=columns, skip_bad=skip_bad, unlabelled=unlabelled, report_path=report,
                                 progress=lambda line: bar.update(line, lines), on_wait=waiting)
    except NlistralError:  # shown by the command line's one handler (pipeline/cli/common.py)
        _forget(store, db, created)
        raise
    except KeyboardInterrupt:
        _forget(store, db, created)
        fail(f"Interrupted: nothing from {path} was imported (an import is one transaction).", 130)
    for line in import_lines(result):
        console.print(line, markup=False)


def _forget(store: Database, path: Path, created: bool) -> None:
    """A failed import leaves no store behind that it created (it holds nothing: one transaction)."""
    from db.connection import discard_if_new_and_empty

    if created:
        discard_if_new_and_empty(store, path)
