"""The root of the pipeline's errors (import, generate, train, evaluate, settings, the API client)."""
from __future__ import annotations

from typing import ClassVar

from db.errors import NlistralError


class PipelineError(NlistralError):
    """Base class for errors raised by the pipeline; str() is the message a user is shown."""


class UsageError(PipelineError):
    """What the command was given cannot work (an option, a config, a setting): exit 2, as for a bad option."""

    exit_code: ClassVar[int] = 2
