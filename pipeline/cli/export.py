"""`nlistral export sft`, `export dpo` and `exports`: thin commands over the exports package."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from pipeline.cli.common import (
    DEFAULT_DB_PATH,
    DbOption,
    ProgressBar,
    console,
    fail,
    open_store,
)

OutOpt = Annotated[Optional[Path], typer.Option("--out", help="The JSON Lines file to write (FILE.manifest.json "
                                                "is written beside it).")]
HfOpt = Annotated[Optional[Path], typer.Option("--hf", help="Write a Hugging Face datasets folder (save_to_disk) "
                                               "here instead of JSON Lines; DIR.manifest.json goes beside it.")]
SplitOpt = Annotated[Optional[list[str]], typer.Option("--split", metavar="SPLIT", help="Split(s) to export; repeat for several "
                                                       "[default: train].")]
DatasetOpt = Annotated[Optional[list[str]], typer.Option("--dataset", metavar="DATASET", help="Only these dataset(s); repeat for "
                                                         "several [default: all].")]
SeedOpt = Annotated[Optional[int], typer.Option("--shuffle-seed", help="Shuffle the rows with this seed "
                                                "[default: example-id order].")]
BiasOpt = Annotated[bool, typer.Option("--include-bias", help="Keep examples flagged for labeler bias.")]
RelabelOpt = Annotated[bool, typer.Option("--use-relabels", help="Targets must reach the suggested label instead "
                                          "of gold where a reviewer suggested one.")]
MaxOpt = Annotated[int, typer.Option("--max-tokens", min=1, help="Leave out (never cut) rows longer than this.")]
TokOpt = Annotated[Optional[str], typer.Option("--tokenizer", help="A local tokenizer folder for exact lengths "
                                               "[default: a conservative estimate, see exports/length.py].")]
DryOpt = Annotated[bool, typer.Option("--dry-run", help="Print the counts only; write nothing.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file (or --hf datasets "
                                            "folder) and its manifest; the export it held is listed as superseded. "
                                            "Without it an existing target is refused.")]
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
                                                    "pending review.")] = False,
        max_tokens: MaxOpt = 512, tokenizer: TokOpt = None, dry_run: DryOpt = False, as_json: JsonOpt = False,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Supervised fine-tuning rows: one target {"thought_process", "predicted_label"} per example.

        Ablations: correct-only = thoughts whose label equals gold; reflected (the original paper's set)
        = those plus, for each wrong thought, its latest reflection when that reaches gold; unmodified =
        every parsed thought as generated, wrong labels included; curated = review decisions applied:
        edits as edited, rejected left out, bias-flagged left out unless --include-bias, pending ones
        by the reflected rule unless --reviewed-only, the chosen reflection version, and with
        --use-relabels the suggested label replaces gold. A reflection (or edit) whose label disagrees
        with gold is left out and counted, never forced to gold. Duplicate pairs are written once;
        rows over --max-tokens are left out, never cut. Every row carries the example's id, dataset and
        source_id (its id in your own file). Every export writes FILE.manifest.json and a row listed by
        `nlistral exports`; an existing file is replaced only with --overwrite.
        """
        from exports import ExportError, SftOptions

        try:
            options = SftOptions(ablation=ablation, fmt=fmt, splits=tuple(split or ("train",)),
                                 datasets=tuple(dataset or ()), shuffle_seed=shuffle_seed, include_bias=include_bias,
                                 use_relabels=use_relabels, reviewed_only=reviewed_only, max_tokens=max_tokens,
                                 tokenizer=tokenizer)
        except ExportError as exc:
            fail(str(exc), 2)
        _export("sft", db, options, out, hf, dry_run, as_json, overwrite)

    @export_app.command("dpo")
    def export_dpo(
        db: DbOption = DEFAULT_DB_PATH, out: OutOpt = None, hf: HfOpt = None, split: SplitOpt = None,
        dataset: DatasetOpt = None, shuffle_seed: SeedOpt = None, include_bias: BiasOpt = False,
        use_relabels: RelabelOpt = False, max_tokens: MaxOpt = 512, tokenizer: TokOpt = None,
        dry_run: DryOpt = False, as_json: JsonOpt = False, overwrite: OverwriteOpt = False,
    ) -> None:
        """Preference pairs {"id", "dataset", "source_id", "prompt", "chosen", "rejected", "provenance"} from review
        decisions.

        chosen: the curated target of an accepted or edited example (an edit, the accepted
        reflection that reaches gold, or a thought that reaches the label); rejected: each generation
        the reviewer passed over (the flawed thought, the reflection an edit or a relabel replaced,
        reflection versions not chosen). prompt is the user turn; chosen and rejected are assistant turns.
        """
        from exports import DpoOptions, ExportError

        try:
            options = DpoOptions(splits=tuple(split or ("train",)), datasets=tuple(dataset or ()),
                                 shuffle_seed=shuffle_seed, include_bias=include_bias, use_relabels=use_relabels,
                                 max_tokens=max_tokens, tokenizer=tokenizer)
        except ExportError as exc:
            fail(str(exc), 2)
        _export("dpo", db, options, out, hf, dry_run, as_json, overwrite)

    @app.command("exports")
    def exports_cmd(
        db: DbOption = DEFAULT_DB_PATH,
        kind: Annotated[Optional[str], typer.Option(help="Only sft or dpo exports.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array instead of a table.")] = False,
        verify: Annotated[bool, typer.Option("--verify", help="Hash every listed file and compare it with the "
                                             "recorded sha256 (reads them all). Without it, the size and time "
                                             "recorded at export are compared.")] = False,
    ) -> None:
        """List the recorded exports, newest first: rule, rows, sha256, the review-log position each reflects,
        which later export superseded it, and whether its file is still what was exported."""
        from exports import list_exports

        records = list_exports(open_store(db, read_only=True), kind)
        states = {r.id: r.state(verify) for r in records}
        if as_json:
            console.print_json(json.dumps([{**vars(r), "manifest": str(r.manifest), "present": r.present,
                                            "state": states[r.id], "manifest_present": r.manifest_present}
                                           for r in records], ensure_ascii=False))
            return
        if not records:
            console.print("No exports yet. Write one with `nlistral export sft --out FILE`.", markup=False)
            return
        # One entry per export, its path on a line of its own: readable at any width, and the path
        # (what people copy) is never cut.
        console.print(f"{len(records)} export{'' if len(records) == 1 else 's'}, newest first", markup=False)
        for r in records:
            superseded = f" · superseded by #{r.superseded_by}" if r.superseded_by is not None else ""
            console.print(Text.assemble(
                (f"#{r.id}", "bold"), f"  {r.kind} · rule {r.rule} · {r.format} · {r.counts.get('rows', 0):,} "
                f"{'pairs' if r.kind == 'dpo' else 'rows'} · review log {r.review_log_position} · sha256 "
                f"{r.sha256[:12]} · {r.created_at[:16].replace('T', ' ')} UTC", (superseded, "yellow")))
            console.print(_path_line(r.path, states[r.id], r.present and not r.manifest_present))


def _path_line(path: str, state: str, no_manifest: bool) -> Text:
    """An export's path and what is wrong with its file, if anything (exports.STATES)."""
    notes = {"missing": "missing", "changed": "changed since export: not the recorded content",
             "unchecked": "unchecked: exported before sizes were recorded; --verify hashes it"}
    words = [notes[state]] if state in notes else []
    if no_manifest:
        words.append("manifest missing")
    line = Text(f"    {path}")
    if words:
        line.append(f" ({'; '.join(words)})", style="dim" if state == "unchecked" and not no_manifest else "red")
    return line


def _export(kind: str, db: Path, options: Any, out: Path | None, hf: Path | None, dry_run: bool, as_json: bool,
            overwrite: bool) -> None:
    from exports import (
        ExportError,
        ExportTargetError,
        available_scopes,
        check_target,
        plan_dpo,
        plan_sft,
        write_dpo,
        write_sft,
    )

    if not dry_run and (out is None) == (hf is None):
        raise typer.BadParameter("give --out FILE (JSON Lines) or --hf DIR (a datasets folder), not both",
                                 param_hint="--out / --hf")
    if not dry_run:  # before the store is even opened: an output is never the store or an input
        try:  # (whether it exists is checked by the export itself, which can say which export is there)
            check_target(out if out is not None else hf, folder=hf is not None, overwrite=True,  # type: ignore[arg-type]
                         store=db, inputs=[options.tokenizer] if options.tokenizer else [])
        except ExportTargetError as exc:
            fail(str(exc), 2)
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

            if dry_run:
                plan = (plan_sft if kind == "sft" else plan_dpo)(store, options, bar.update, on_wait=waiting)
            else:
                writer = write_sft if kind == "sft" else write_dpo
                manifest = writer(store, options, out=out, hf_dir=hf, progress=bar.update, overwrite=overwrite,
                                  on_wait=waiting)
    except ExportTargetError as exc:
        fail(str(exc), 2)
    except ExportError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("Interrupted: nothing was written (an export goes to a temporary name and is renamed when done).", 130)
    if dry_run:
        if as_json:
            console.print_json(json.dumps(plan.as_dict(), ensure_ascii=False))
            return
        _print_plan(plan.as_dict())
        console.print("Dry run: nothing written.", markup=False)
    elif as_json:
        console.print_json(json.dumps(manifest.as_dict(), ensure_ascii=False))
    else:
        _print_plan(manifest.counts)
        console.print(f"Wrote {manifest.rows} {'rows' if kind == 'sft' else 'pairs'} to {manifest.path}\n"
                      f"  sha256 {manifest.sha256}\n  manifest {manifest.manifest} (export {manifest.export_id}, "
                      f"review log at {manifest.review_log_position})", markup=False)


def _print_plan(counts: dict[str, Any]) -> None:
    """The counts of a plan or manifest as a table, left-out reasons in words, cross-split warnings."""
    from exports import REASONS

    unit = "pairs" if counts["kind"] == "dpo" else "rows"
    table = Table(title=f"{counts['kind']} export, rule {counts['rule']}", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("detail")
    table.add_row("examples considered", str(counts["considered"]), "")
    table.add_row(f"{unit} written", str(counts["rows"]), f"from {counts['examples']} examples")
    for label, n in counts["by_label"].items():
        share = counts["label_balance"].get(label, 0.0)
        table.add_row(f"  label {label}", str(n), f"{share:.1%}")
    for title, key in (("source", "by_source"), ("model", "by_model"), ("split", "by_split")):
        for name, n in counts[key].items():
            table.add_row(Text(f"  {title} {name}"), str(n), "")
    for reason, n in counts["left_out"].items():
        ids = counts["left_out_ids"].get(reason, [])
        shown = ", ".join(map(str, ids[:8])) + (" ..." if n > 8 else "")
        table.add_row(f"left out: {reason}", str(n), Text(f"{REASONS.get(reason, '')}; ids {shown}"))
    console.print(table)
    console.print(f"Lengths: {counts['length_measure']}, at most {counts['max_tokens']} tokens.", markup=False)
    for item in counts["cross_split"][:10]:
        console.print(Text(f"warning: example {item['id']} ({item['scope']}) is also in {', '.join(item['also_in'])}",
                           style="yellow"))
    if len(counts["cross_split"]) > 10:
        console.print(f"warning: ... {len(counts['cross_split']) - 10} more pairs present in two splits.", markup=False)
