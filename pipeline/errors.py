"""The root of the pipeline's errors (import, generate, train, evaluate, settings, the API client)."""
from __future__ import annotations

from db.errors import NlistralError


class PipelineError(NlistralError):
    """Base class for errors raised by the pipeline; str() is the message a user is shown."""
