"""What `nlistral import` prints about one import: counts, where the names came from, what was skipped."""
from __future__ import annotations

from pipeline.importing import ImportReport


def _shown(path: object) -> str:
    """A path as text, a file name's bytes that are not UTF-8 as escapes (stdout cannot encode them)."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def import_lines(result: ImportReport) -> list[str]:
    """The lines of the import's report, to print literally (never as markup)."""
    what = f" and {result.generations_added} {result.kind}s" if result.kind else ""
    added = f"{result.examples_added} new example{'' if result.examples_added == 1 else 's'}{what}"
    lines = [f"{_shown(result.path)}: {result.format} into {result.dataset}/{result.split}: {added}"]
    names = result.names
    if names is not None:
        lines.append(f"  dataset {names.dataset} ({names.dataset_from}), split {names.split} ({names.split_from})")
    if result.layout != "seed":
        lines.append(f"  layout {result.layout}")
    if result.no_consensus:
        lines.append(f"  {result.no_consensus} row{' was' if result.no_consensus == 1 else 's were'} skipped: no "
                     "consensus gold label (such as '-'); never guessed.")
    if result.examples_unchanged:
        lines.append(f"  {result.examples_unchanged} example{' was' if result.examples_unchanged == 1 else 's were'} "
                     "already there, unchanged.")
    if result.generations_unchanged:
        lines.append(f"  {result.generations_unchanged} {result.kind}s were already there, unchanged.")
    if result.rejected:
        lines.append(f"  {len(result.rejected)} rows rejected; reasons in {_shown(result.report_path)}")
    return lines
