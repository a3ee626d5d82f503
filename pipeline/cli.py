"""The `nlistral` command line: thin commands that parse, validate and call one core function."""
from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.cli_common import DEFAULT_DB_PATH, DbOption, ProgressBar, console, fail, open_store

app = typer.Typer(
    name="nlistral",
    help="Curate chain-of-thought NLI data in the terminal and fine-tune Mistral-7B on it.\n\n"
    "Run without a command to open the review app on --db.",
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context, db: DbOption = DEFAULT_DB_PATH) -> None:
    if ctx.invoked_subcommand is None:
        launch_tui(db)


def launch_tui(db_path: Path) -> None:
    """Open the review app on a database (the import is lazy: only the app needs Textual)."""
    open_store(db_path).conn.close()
    if importlib.util.find_spec("nlistral_tui.app") is None:
        console.print("The review app is not built yet; here are the stats instead.\n")
        _print_stats(db_path)
        return
    from nlistral_tui.app import run_app

    run_app(db_path)


@app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(help="A CSV or JSON Lines file.", show_default=False)],
    db: DbOption = DEFAULT_DB_PATH,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name [default: from the file name, "
                       "e.g. rte_dev.csv -> rte]")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split name [default: from the file name's "
                     "_train/_dev/_test suffix, else train]")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, csv, jsonl, seed-thoughts or seed-reflections; "
               "auto decides by extension and by the fields of the first record.")] = "auto",
    model: Annotated[Optional[str], typer.Option(help="Model name to record on imported thoughts or "
                     "reflections [default: the record's model field, else 'unknown'].")] = None,
    label_map: Annotated[Optional[str], typer.Option(help="Map label names to 0/1: 'nli' (entailment=1; "
                         "neutral, contradiction, not_entailment=0) or pairs like 'yes=1,no=0'. "
                         "Without it only 0 and 1 are accepted.")] = None,
    unlabelled: Annotated[bool, typer.Option(help="The file has no gold labels (e.g. a hidden test "
                          "set); any label column is ignored.")] = False,
    skip_bad: Annotated[bool, typer.Option(help="Import the good rows and write the rejected ones, "
                        "with reasons, to a report file.")] = False,
    report: Annotated[Optional[Path], typer.Option(help="Where --skip-bad writes rejected rows "
                      "[default: ./FILE.rejected.jsonl].")] = None,
) -> None:
    """Import NLI pairs (CSV/JSONL) or the original pipeline's thought / reflection files.

    One file is one transaction: on bad input nothing is written and the error names the file,
    the line and the fix. Importing the same file again adds nothing.
    """
    from pipeline.importing import FORMATS, ImportFailed, import_file
    from pipeline.importing.readers import line_count
    from pipeline.labels import LabelError, parse_label_map

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    try:
        mapping = parse_label_map(label_map)
    except LabelError as exc:
        raise typer.BadParameter(str(exc), param_hint="--label-map") from None
    store = open_store(db)
    lines = line_count(path)
    try:
        with ProgressBar(f"importing {path.name} (lines)") as bar:
            result = import_file(store, path, dataset=dataset, split=split, fmt=fmt, model=model,
                                 label_map=mapping, skip_bad=skip_bad, unlabelled=unlabelled, report_path=report,
                                 progress=lambda line: bar.update(line, lines))
    except ImportFailed as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail(f"Interrupted: nothing from {path} was imported (an import is one transaction).", 130)
    what = f" and {result.generations_added} {result.kind}s" if result.kind else ""
    console.print(
        f"{result.path}: {result.format} into {result.dataset}/{result.split}: "
        f"{result.examples_added} new example{'' if result.examples_added == 1 else 's'}{what}", markup=False)
    if result.examples_unchanged:
        console.print(f"  {result.examples_unchanged} example{' was' if result.examples_unchanged == 1 else 's were'} "
                      "already there, unchanged.", markup=False)
    if result.generations_unchanged:
        console.print(f"  {result.generations_unchanged} {result.kind}s were already there, unchanged.", markup=False)
    if result.rejected:
        console.print(f"  {len(result.rejected)} rows rejected; reasons in {result.report_path}", markup=False)


@app.command()
def stats(
    db: DbOption = DEFAULT_DB_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Counts, the thought model against gold, reflection coverage and review progress."""
    if as_json:
        from pipeline.stats import collect_stats

        store = open_store(db)
        console.print_json(json.dumps(collect_stats(store)))
        return
    _print_stats(db)


def _print_stats(db: Path) -> None:
    from pipeline.stats import collect_stats
    from pipeline.stats_view import render_stats

    console.print(render_stats(collect_stats(open_store(db))))


@app.command()
def demo(
    db: Annotated[Path, typer.Option("--db", help="Where to build the demo database.")] = Path("nlistral-demo.db"),
    no_tui: Annotated[bool, typer.Option("--no-tui", help="Only build the database.")] = False,
) -> None:
    """Build a fresh demo database (45 hand-written examples) and open the review app on it."""
    from pipeline.demo import DemoError, build_demo

    try:
        build_demo(db)
    except DemoError as exc:
        fail(str(exc))
    console.print(f"Built the demo database at {db}.", markup=False)
    if not no_tui:
        launch_tui(db)


@app.command()
def tui(db: DbOption = DEFAULT_DB_PATH) -> None:
    """Open the review app."""
    launch_tui(db)


# Commands of the later stages live in their own modules, each with register(app).
for _name in ("cli_generate", "cli_export", "cli_train", "cli_evaluate"):
    if importlib.util.find_spec(f"pipeline.{_name}") is not None:
        importlib.import_module(f"pipeline.{_name}").register(app)


def main() -> None:
    """Entry point of the installed `nlistral` command."""
    app()
