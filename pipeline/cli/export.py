"""`nlistral export sft`, `export dpo` and `exports`: thin commands over the exports package."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline.cli.common import (
    DEFAULT_DB_PATH,
    DbOption,
    ProgressBar,
    console,
    fail,
    open_store,
)

if TYPE_CHECKING:
    from exports import ExportOptions

OutOpt = Annotated[Path | None, typer.Option("--out", help="The JSON Lines file to write (FILE.manifest.json "
                                             "is written beside it).")]
HfOpt = Annotated[Path | None, typer.Option("--hf", help="Write a Hugging Face datasets folder (save_to_disk) "
                                            "here instead of JSON Lines; DIR.manifest.json goes beside it.")]
SplitOpt = Annotated[list[str] | None, typer.Option("--split", metavar="SPLIT", help="Split(s) to export; repeat "
                                                    "for several [default: train].")]
DatasetOpt = Annotated[list[str] | None, typer.Option("--dataset", metavar="DATASET", help="Only these dataset(s); "
                                                      "repeat for several [default: all].")]
SeedOpt = Annotated[int | None, typer.Option("--shuffle-seed", help="Shuffle the rows with this seed "
                                                "[default: example-id order].")]
BiasOpt = Annotated[bool, typer.Option("--include-bias", help="Keep examples flagged for labeler bias.")]
RelabelOpt = Annotated[bool, typer.Option("--use-relabels", help="Targets must reach the suggested label instead "
                                          "of gold where a reviewer suggested one.")]
PolicyOpt = Annotated[str, typer.Option("--policy", help="How an example the reviewers disagree on (and no one "
                                        "adjudicated) is exported: unanimous leaves it out (counted as contested), "
                                        "majority takes the decision most reviewers hold (a tie: contested), latest "
                                        "takes the latest decision. An adjudication, or a decision all reviewers "
                                        "share, is always used.")]
RouteOpt = Annotated[str, typer.Option("--route", metavar="small=R", help="Edit-aware routing: an edit that changes "
                                      "at most the share R of the words it replaced (word-level edit distance) is "
                                      "small, a training target as edited; a larger one is also a DPO pair (chosen: "
                                      "the edit, rejected: the model's text). sft counts large edits under the source "
                                      "edit_large; dpo leaves small edits out as small_edit. An edit that did not "
                                      "record what it replaced counts as large.")]
MaxOpt = Annotated[int, typer.Option("--max-tokens", min=1, help="Leave out (never cut) rows longer than this.")]
TokOpt = Annotated[str | None, typer.Option("--tokenizer", help="A local tokenizer folder for exact lengths "
                                               "[default: a conservative estimate, see exports/length.py].")]
DryOpt = Annotated[bool, typer.Option("--dry-run", help="Print the counts only; write nothing.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file (or --hf datasets "
                                            "folder) and its manifest; the export it held is listed as superseded. "
                                            "Without it an existing target is refused.")]
ROUTE_DEFAULT = "small=0.2"  # exports.routing.DEFAULT_SMALL (checked by tests/test_export_routing.py)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the manifest (or, with --dry-run, the counts) as JSON.")]


def register(app: typer.Typer) -> None:
    """Add `export sft`, `export dpo` and `exports` to the CLI."""
    export_app = typer.Typer(name="export", no_args_is_help=True, rich_markup_mode=None,
                             help="Write curated training data with a manifest of exactly what went in and why.")
    app.add_typer(export_app, name="export")

    @export_app.command("sft")
    def export_sft(
        db: DbOption = DEFAULT_DB_PATH,
        ablation: Annotated[str, typer.Option(help="correct-only, reflected, unmodified or curated.")] = "reflected",
        fmt: Annotated[str, typer.Option("--format", help="inst ({\"id\", \"text\"} in the Mistral [INST] layout) "
                                         "or messages ({\"id\", \"messages\"} for chat templates).")] = "inst",
        out: OutOpt = None, hf: HfOpt = None, split: SplitOpt = None, dataset: DatasetOpt = None,
        shuffle_seed: SeedOpt = None, include_bias: BiasOpt = False, use_relabels: RelabelOpt = False,
        reviewed_only: Annotated[bool, typer.Option("--reviewed-only", help="curated: leave out examples still "
                                                    "pending review.")] = False, policy: PolicyOpt = "unanimous",
        route: RouteOpt = ROUTE_DEFAULT, max_tokens: MaxOpt = 512, tokenizer: TokOpt = None,
        dry_run: DryOpt = False, as_json: JsonOpt = False, overwrite: OverwriteOpt = False,
    ) -> None:
        """Supervised fine-tuning rows: one target {"thought_process", "predicted_label"} per example.

        Ablations: correct-only = thoughts whose label equals gold; reflected (the original paper's set)
        = those plus, for each wrong thought, its latest reflection when that reaches gold; unmodified =
        every parsed thought as generated, wrong labels included; curated = review decisions applied:
        edits as edited (one over --route's small share counted as edit_large), rejected left out,
        bias-flagged left out unless --include-bias, pending ones by the reflected rule unless
        --reviewed-only, the chosen reflection version, and with --use-relabels the suggested label
        replaces gold. A reflection (or edit) whose label disagrees
        with gold is left out and counted, never forced to gold. Where several reviewers disagree, an
        adjudication decides, else --policy. Duplicate pairs are written once;
        rows over --max-tokens are left out, never cut. Every row carries the example's id, dataset and
        source_id (its id in your own file). Every export writes FILE.manifest.json and a row listed by
        `nlistral exports`; an existing file is replaced only with --overwrite.
        """
        from exports import ExportError, SftOptions
        from exports.routing import parse_route

        try:
            options = SftOptions(ablation=ablation, fmt=fmt, splits=tuple(split or ("train",)),
                                 datasets=tuple(dataset or ()), shuffle_seed=shuffle_seed, include_bias=include_bias,
                                 use_relabels=use_relabels, reviewed_only=reviewed_only, policy=policy,
                                 max_tokens=max_tokens, tokenizer=tokenizer, route_small=parse_route(route))
        except ExportError as exc:
            fail(str(exc), 2)
        _export(db, options, out, hf, dry_run, as_json, overwrite)

    @export_app.command("dpo")
    def export_dpo(
        db: DbOption = DEFAULT_DB_PATH, out: OutOpt = None, hf: HfOpt = None, split: SplitOpt = None,
        dataset: DatasetOpt = None, shuffle_seed: SeedOpt = None, include_bias: BiasOpt = False,
        use_relabels: RelabelOpt = False, policy: PolicyOpt = "unanimous", route: RouteOpt = ROUTE_DEFAULT,
        max_tokens: MaxOpt = 512, tokenizer: TokOpt = None, dry_run: DryOpt = False, as_json: JsonOpt = False,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Preference pairs {"id", "dataset", "source_id", "prompt", "chosen", "rejected", "provenance"} from review
        decisions.

        chosen: the curated target of an accepted or edited example (an edit larger than --route's small
        share, the accepted reflection that reaches gold, or a thought that reaches the label; a small edit
        gives no pair); rejected: each generation
        the reviewer passed over (the flawed thought, the reflection an edit or a relabel replaced,
        reflection versions not chosen). prompt is the user turn; chosen and rejected are assistant turns.
        Where several reviewers disagree, an adjudication decides, else --policy; each pair's provenance
        lists the reviewers' decisions with their reasons and comments.
        """
        from exports import DpoOptions, ExportError
        from exports.routing import parse_route

        try:
            options = DpoOptions(splits=tuple(split or ("train",)), datasets=tuple(dataset or ()),
                                 shuffle_seed=shuffle_seed, include_bias=include_bias, use_relabels=use_relabels,
                                 policy=policy, max_tokens=max_tokens, tokenizer=tokenizer,
                                 route_small=parse_route(route))
        except ExportError as exc:
            fail(str(exc), 2)
        _export(db, options, out, hf, dry_run, as_json, overwrite)

    @app.command("exports")
    def exports_cmd(
        db: DbOption = DEFAULT_DB_PATH,
        kind: Annotated[str | None, typer.Option(help="Only sft or dpo exports.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array instead of a table.")] = False,
        verify: Annotated[bool, typer.Option("--verify", help="Hash every listed file and compare it with the "
                                             "recorded sha256 (reads them all). Without it, the size and time "
                                             "recorded at export are compared.")] = False,
    ) -> None:
        """List the recorded exports, newest first: rule, rows, sha256, the review-log position each reflects,
        which later export superseded it, and whether its file is still what was exported."""
        from exports import list_exports
        from pipeline.views.export import exports_view

        records = list_exports(open_store(db, read_only=True), kind)
        states = {r.id: r.state(verify) for r in records}
        if as_json:
            console.print_json(json.dumps([{**vars(r), "manifest": str(r.manifest), "present": r.present,
                                            "state": states[r.id], "manifest_present": r.manifest_present}
                                           for r in records], ensure_ascii=False))
            return
        # One entry per export, its path on a line of its own: readable at any width, and the path
        # (what people copy) is never cut.
        console.print(exports_view(records, states))


def _export(db: Path, options: ExportOptions, out: Path | None, hf: Path | None, dry_run: bool, as_json: bool,
            overwrite: bool) -> None:
    """Plan or write the export (exports.plan / exports.write) with a progress bar; print what it counted."""
    from exports import ExportRequest, available_scopes, check_target, plan, write
    from pipeline.views.export import plan_view, unit

    if not dry_run and (out is None) == (hf is None):
        raise typer.BadParameter("give --out FILE (JSON Lines) or --hf DIR (a datasets folder), not both",
                                 param_hint="--out / --hf")
    request = None if dry_run else ExportRequest(options, out, hf, overwrite)
    if request is not None:  # before the store is even opened: an output is never the store or an input
        # (whether it exists is checked by the export itself, which can say which export is there);
        # an ExportTargetError goes to the one handler (cli/common.py), exit 2
        check_target(request.path, folder=hf is not None, overwrite=True, store=db,
                     inputs=[options.tokenizer] if options.tokenizer else [])
    store = open_store(db, create=False)
    scopes = available_scopes(store)
    if not any(s in options.splits and (not options.datasets or d in options.datasets) for d, s, _ in scopes):
        held = ", ".join(f"{d}/{s} ({n})" for d, s, n in scopes) or "nothing yet"
        fail(f"No examples in split(s) {', '.join(options.splits)}"
             + (f" of {', '.join(options.datasets)}" if options.datasets else "")
             + f". This database holds: {held}. Pass --split (and --dataset).")
    try:
        with ProgressBar("selecting", quiet=as_json) as bar:
            def waiting() -> None:
                bar.note(f"waiting: another process is writing to {db}; the export goes on when it is done "
                         "(Ctrl-C stops it).")

            if request is None:
                counts = plan(store, options, bar.update, on_wait=waiting)
            else:
                manifest = write(store, request, bar.update, on_wait=waiting)
    except KeyboardInterrupt:  # an ExportError goes to the one handler (cli/common.py)
        fail("Interrupted: nothing was written (an export goes to a temporary name and is renamed when done).", 130)
    if request is None:
        if as_json:
            console.print_json(json.dumps(counts.as_dict(), ensure_ascii=False))
            return
        console.print(plan_view(counts))
        console.print("Dry run: nothing written.", markup=False)
    elif as_json:
        console.print_json(json.dumps(manifest.as_dict(), ensure_ascii=False))
    else:
        console.print(plan_view(manifest.plan))
        console.print(f"Wrote {manifest.rows} {unit(manifest.kind)} to {manifest.path}\n"
                      f"  sha256 {manifest.sha256}\n  manifest {manifest.manifest} (export {manifest.export_id}, "
                      f"review log at {manifest.review_log_position})", markup=False)
