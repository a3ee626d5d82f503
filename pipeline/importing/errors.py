"""What an import rejects, and the error that stops it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError, UsageError
from pipeline.labels import THREE_CLASS, THREE_CLASS_FIX

MAX_SHOWN = 5


@dataclass(frozen=True)
class BadRow:
    """One rejected input row: where, why, how to fix it, and the row as it was."""

    line: int
    reason: str
    fix: str
    raw: str = ""
    three_class: bool = False  # its label is 2: the file looks like 3-class NLI (see pipeline.labels)


class ImportFailed(PipelineError):
    """The file cannot be imported; nothing was written. str() is the message for the user."""

    def __init__(self, path: Path, problems: list[BadRow], header: str | None = None):
        self.path, self.problems = path, problems
        lines = [header or f"{path}: {len(problems)} bad row(s); nothing was imported."]
        lines += [f"  {path}:{p.line}: {p.reason}. Fix: {p.fix}." for p in problems[:MAX_SHOWN]]
        if len(problems) > MAX_SHOWN:
            lines.append(f"  ... and {len(problems) - MAX_SHOWN} more.")
        if problems and problems[0].line > 0:
            lines.append("Fix the rows, or pass --skip-bad to import the good ones and write the rest to a report.")
        super().__init__("\n".join(lines))


def three_class_failure(path: Path, bad: list[BadRow], skip_bad: bool) -> ImportFailed:
    """The error for a file with rows labelled 2 and no numbered --label-map: refused whole, even with
    --skip-bad, since the rows labelled 0 of a 3-class file mean entailment, not what 0 means here."""
    twos = [b for b in bad if b.three_class]
    lines = ", ".join(str(b.line) for b in twos[:MAX_SHOWN]) + (", ..." if len(twos) > MAX_SHOWN else "")
    but = (", even with --skip-bad: read as 0/1, its rows labelled 0 (entailment) would be stored as no "
           "entailment" if skip_bad else "")
    return ImportFailed(path, [], f"{path}:{twos[0].line}: {twos[0].reason} ({len(twos)} row(s) labelled 2, on "
                        f"line(s) {lines}): {THREE_CLASS}. Nothing was imported{but}.\nFix: {THREE_CLASS_FIX}.")


class RowProblem(PipelineError):
    """A record failed validation (turned into a BadRow with its line and raw text)."""

    def __init__(self, reason: str, fix: str, *, three_class: bool = False):
        super().__init__(reason)
        self.reason, self.fix, self.three_class = reason, fix, three_class


class NoGold(PipelineError):
    """A row whose gold label says the annotators reached no consensus (SNLI's `-`): skipped and counted."""


class BadOption(UsageError):
    """A command-line option cannot work with this file (exit 2); str() says which option and the fix."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


class ReportFailed(PipelineError):
    """The import was committed but its report of rejected rows could not be put in place; str() says where it is."""
