"""What an import rejects, and the error that stops it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_SHOWN = 5


@dataclass(frozen=True)
class BadRow:
    """One rejected input row: where, why, how to fix it, and the row as it was."""

    line: int
    reason: str
    fix: str
    raw: str = ""


class ImportFailed(Exception):
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


class RowProblem(Exception):
    """A record failed validation (turned into a BadRow with its line and raw text)."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason, self.fix = reason, fix
