"""The team's review guidelines: a Markdown file named in the config file, else GUIDE.md beside the store."""
from __future__ import annotations

from pathlib import Path

from pipeline.errors import UsageError
from pipeline.settings import Settings

GUIDE_NAME = "GUIDE.md"
MAX_BYTES = 512_000  # a guide, not a book: a bigger file is refused rather than read into the app


class GuidelinesError(UsageError):
    """The guidelines file is missing, too big or not readable text."""


def guidelines_path(settings: Settings, store: Path) -> Path:
    """Where the guidelines are: `guidelines` in the config file (relative to that file), else GUIDE.md
    beside the store."""
    if settings.guidelines:
        named = Path(settings.guidelines).expanduser()
        if not named.is_absolute() and settings.path is not None:
            named = settings.path.parent / named
        return named
    return store.resolve().parent / GUIDE_NAME


def read_guidelines(path: Path) -> str:
    """The guide's Markdown text; GuidelinesError says what is wrong and how to fix it."""
    where = ("write the team's guide there, or name one in the config file: guidelines = \"GUIDE.md\" "
             "(a path relative to the config file)")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise GuidelinesError(f"{path} is {size:,} bytes; guidelines are read up to {MAX_BYTES:,}: "
                                  "shorten the guide or split it.")
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise GuidelinesError(f"No guidelines at {path}: {where}.") from None
    except UnicodeDecodeError as exc:
        raise GuidelinesError(f"{path} is not UTF-8 text ({exc.reason}); save it as UTF-8 Markdown.") from None
    except OSError as exc:
        raise GuidelinesError(f"{path} cannot be read ({exc.strerror or exc}); check it is a readable file.") from None
