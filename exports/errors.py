"""Domain exceptions of the exporters. Each message says what was wrong and how to fix it."""
from __future__ import annotations

from typing import ClassVar

from db.errors import NlistralError


class ExportError(NlistralError):
    """Base class for errors raised while planning or writing an export."""


class ExportOptionError(ExportError, ValueError):
    """An export option is invalid or does not apply to the chosen rule."""


class ExportTargetError(ExportError):
    """The output path cannot be written (a directory in the way, a missing folder, the store, an input, ...).

    Exit 2, as for a bad option: the fix is in the --out / --hf given.
    """

    exit_code: ClassVar[int] = 2


class TargetExistsError(ExportTargetError):
    """The output path is taken and --overwrite was not given."""


class ExportWriteError(ExportError):
    """Writing the export failed midway (a full disk, a file-size limit, no permission); nothing was kept."""


class TokenizerLoadError(ExportError):
    """The tokenizer given for the length check cannot be loaded from local files."""


class EmptyExportError(ExportError):
    """Every example was left out: nothing would be written."""


class ManifestPlaceError(ExportError):
    """The export is recorded and in place, but its manifest could not be renamed beside it."""
