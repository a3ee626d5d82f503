"""The `nlistral` command line: the root (--db, the review app without a command) and its command groups.

Each group lives in its own module with register(app); the root's Commands group turns any error the
project raises on purpose into its message and exit code (pipeline/cli/common.py).
"""
from __future__ import annotations

import typer

from pipeline.cli import attribute as attribute_commands
from pipeline.cli import cartography as cartography_commands
from pipeline.cli import diff as diff_commands
from pipeline.cli import evaluate as evaluate_commands
from pipeline.cli import export as export_commands
from pipeline.cli import generate as generate_commands
from pipeline.cli import importing as import_commands
from pipeline.cli import models as models_commands
from pipeline.cli import review as review_commands
from pipeline.cli import stats as stats_commands
from pipeline.cli import team as team_commands
from pipeline.cli import train as train_commands
from pipeline.cli import triage as triage_commands
from pipeline.cli.common import DEFAULT_DB_PATH, Commands, DbOption
from pipeline.cli.review import launch_tui

app = typer.Typer(
    name="nlistral",
    cls=Commands,
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


# In the order `nlistral --help` lists them.
for _group in (import_commands, stats_commands, review_commands, team_commands, triage_commands,
               generate_commands, export_commands, diff_commands, train_commands, cartography_commands,
               evaluate_commands, attribute_commands, models_commands):
    _group.register(app)


def main() -> None:
    """Entry point of the installed `nlistral` command."""
    app()
