"""The `nlistral` command line: thin commands that parse, validate and call one core function."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from db.errors import StoreError
from pipeline.cli import evaluate as evaluate_commands
from pipeline.cli import export as export_commands
from pipeline.cli import generate as generate_commands
from pipeline.cli import train as train_commands
from pipeline.cli.common import (
    DEFAULT_DB_PATH,
    DbOption,
    ProgressBar,
    console,
    db_callback,
    fail,
    open_store,
)

if TYPE_CHECKING:
    from sqlite_utils import Database

app = typer.Typer(
    name="nlistral",
    help="Curate chain-of-thought NLI data in the terminal and fine-tune Mistral-7B on it.\n\n"
    "Run without a command to open the review app on --db. The database is --db after the command, else "
    "--db before it (nlistral --db FILE COMMAND), else $NLISTRAL_DB, else ./nlistral.db.",
    add_completion=False,
    rich_markup_mode=None,
    # A traceback must never print local variables: they can hold an API key or dataset text.
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context, db: DbOption = DEFAULT_DB_PATH) -> None:
    if ctx.invoked_subcommand is None:
        launch_tui(db)


def launch_tui(db_path: Path) -> None:
    """Open the review app on an existing database (the import is lazy: only the app needs Textual)."""
    open_store(db_path, create=False).conn.close()
    if importlib.util.find_spec("nlistral_tui.app") is None:
        console.print("The review app is not built yet; here are the stats instead.\n")
        _print_stats(db_path)
        return
    from nlistral_tui.app import run_app

    run_app(db_path)


@app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(help="A CSV, tab-separated or JSON Lines file.", show_default=False)],
    db: DbOption = DEFAULT_DB_PATH,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name [default: the file name without its "
                       "split word, e.g. rte_dev.csv -> rte]")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split name [default: a split word anywhere in the file "
                     "name (train; dev, validation, valid, val, trial -> dev; test), else train]")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, csv, tsv, jsonl, seed-thoughts or seed-reflections; "
               "auto decides by extension and by the first record.")] = "auto",
    columns: Annotated[Optional[str], typer.Option(help="Which columns (or JSON fields) hold what, for a layout "
                       "that is not recognised: premise=COL,hypothesis=COL,label=COL[,id=COL]. Recognised "
                       "without it: premise/hypothesis/label[/id], SNLI/MultiNLI, ANLI.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model name to record on imported thoughts or "
                     "reflections [default: the record's model field, else 'unknown'].")] = None,
    label_map: Annotated[Optional[str], typer.Option(help="Map labels to 0/1: 'nli' (entailment=1; "
                         "neutral, contradiction, not_entailment=0), 'nli-numbered' (Hugging Face's numbering: "
                         "0 entailment=1; 1 neutral, 2 contradiction=0; -1 no gold label, skipped) or pairs like "
                         "'yes=1,no=0' or '0=1,1=0,2=0' (NAME=- skips rows with that label). A map that names "
                         "a number reads every number through it, 0 and 1 included. Without it only 0 and 1 "
                         "are accepted (and the names of a recognised SNLI, MultiNLI or ANLI layout).")] = None,
    unlabelled: Annotated[bool, typer.Option(help="The file has no gold labels (e.g. a hidden test "
                          "set); any label column is ignored.")] = False,
    skip_bad: Annotated[bool, typer.Option(help="Import the good rows and write the rejected ones, "
                        "with reasons, to a report file.")] = False,
    report: Annotated[Optional[Path], typer.Option(help="Where --skip-bad writes rejected rows "
                      "[default: ./FILE.rejected.jsonl].")] = None,
) -> None:
    """Import NLI pairs (CSV, TSV, JSON Lines) or the original pipeline's thought / reflection files.

    One file is one transaction: on bad input nothing is written and the error names the file,
    the line and the fix. Importing the same file again adds nothing. Prints the dataset, split
    and layout chosen, and where each came from.
    """
    from db.errors import OutputPathError
    from pipeline.importing import (
        BadOption,
        ImportFailed,
        ReportFailed,
        check_report,
        default_report_path,
        import_file,
        plan_import,
    )
    from pipeline.importing.readers import line_count
    from pipeline.labels import LabelError, parse_label_map

    try:
        mapping = parse_label_map(label_map)
    except LabelError as exc:
        raise typer.BadParameter(str(exc), param_hint="--label-map") from None
    # Everything that can be checked is checked before the store is opened (or created).
    try:
        plan_import(path, fmt=fmt, dataset=dataset, split=split, model=model, label_map=mapping, columns=columns,
                    unlabelled=unlabelled)
        if skip_bad or report is not None:
            check_report(report or default_report_path(path), store=db, source=path)
    except (BadOption, OutputPathError) as exc:
        fail(str(exc), 2)
    except ImportFailed as exc:
        fail(str(exc))
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
    except (BadOption, OutputPathError) as exc:
        _forget(store, db, created)
        fail(str(exc), 2)
    except (ImportFailed, ReportFailed) as exc:
        _forget(store, db, created)
        fail(str(exc))
    except KeyboardInterrupt:
        _forget(store, db, created)
        fail(f"Interrupted: nothing from {path} was imported (an import is one transaction).", 130)
    what = f" and {result.generations_added} {result.kind}s" if result.kind else ""
    # A file name's bytes that are not UTF-8 are shown as escapes: stdout cannot encode them.
    shown_path = str(result.path).encode("utf-8", "backslashreplace").decode("utf-8")
    console.print(
        f"{shown_path}: {result.format} into {result.dataset}/{result.split}: "
        f"{result.examples_added} new example{'' if result.examples_added == 1 else 's'}{what}", markup=False)
    names = result.names
    if names is not None:
        console.print(f"  dataset {names.dataset} ({names.dataset_from}), split {names.split} ({names.split_from})",
                      markup=False)
    if result.layout != "seed":
        console.print(f"  layout {result.layout}", markup=False)
    if result.no_consensus:
        console.print(f"  {result.no_consensus} row{' was' if result.no_consensus == 1 else 's were'} skipped: no "
                      "consensus gold label (such as '-'); never guessed.", markup=False)
    if result.examples_unchanged:
        console.print(f"  {result.examples_unchanged} example{' was' if result.examples_unchanged == 1 else 's were'} "
                      "already there, unchanged.", markup=False)
    if result.generations_unchanged:
        console.print(f"  {result.generations_unchanged} {result.kind}s were already there, unchanged.", markup=False)
    if result.rejected:
        shown_report = str(result.report_path).encode("utf-8", "backslashreplace").decode("utf-8")
        console.print(f"  {len(result.rejected)} rows rejected; reasons in {shown_report}", markup=False)


def _forget(store: Database, path: Path, created: bool) -> None:
    """A failed import leaves no store behind that it created (it holds nothing: one transaction)."""
    from db.connection import discard_if_new_and_empty

    if created:
        discard_if_new_and_empty(store, path)


@app.command()
def stats(
    db: DbOption = DEFAULT_DB_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Counts, the thought model against gold, reflection coverage and review progress."""
    if as_json:
        from pipeline.stats import collect_stats

        store = open_store(db, read_only=True)
        console.print_json(json.dumps(collect_stats(store)))
        return
    _print_stats(db)


def _print_stats(db: Path) -> None:
    from pipeline.stats import collect_stats
    from pipeline.views.stats import render_stats

    console.print(render_stats(collect_stats(open_store(db, read_only=True))))


@app.command()
def demo(
    db: Annotated[Path, typer.Option("--db", callback=db_callback, help="The demo database (also taken before "
                  "the command; NLISTRAL_DB is not used, so the demo never lands in your own store).")]
    = Path("nlistral-demo.db"),
    fresh: Annotated[bool, typer.Option("--fresh", help="Rebuild the demo database, deleting its review "
                     "decisions, exports records and runs (it says how many).")] = False,
    no_tui: Annotated[bool, typer.Option("--no-tui", help="Only build (or check) the database.")] = False,
) -> None:
    """Open the review app on the demo database (45 hand-written examples), building it if missing.

    An existing demo database is opened as it is, with every review decision kept; --fresh rebuilds it.
    """
    from pipeline.demo import DemoError, describe_work, open_demo

    try:
        opened = open_demo(db, fresh=fresh)
    except DemoError as exc:
        fail(str(exc))
    except StoreError as exc:
        fail(str(exc), 2)
    work = describe_work(opened.work)
    if opened.deleted:
        console.print(f"Rebuilt the demo database at {db}; deleted {work or 'nothing but the demo data'}.",
                      markup=False)
    elif opened.built:
        console.print(f"Built the demo database at {db}.", markup=False)
    else:
        console.print(f"Opened the demo database at {db} as it is" + (f" ({work} kept)" if work else "")
                      + "; `nlistral demo --fresh` rebuilds it.", markup=False)
    if not no_tui:
        launch_tui(db)


@app.command()
def tui(db: DbOption = DEFAULT_DB_PATH) -> None:
    """Open the review app."""
    launch_tui(db)


# Commands of the later stages live in their own modules, each with register(app).
for _group in (generate_commands, export_commands, train_commands, evaluate_commands):
    _group.register(app)


def main() -> None:
    """Entry point of the installed `nlistral` command."""
    app()
