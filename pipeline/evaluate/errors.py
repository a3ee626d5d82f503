"""The evaluation's own error: a run that cannot go as asked."""
from __future__ import annotations

from pipeline.errors import PipelineError


class EvaluationError(PipelineError, ValueError):
    """The evaluation cannot run as asked (the message says how to fix it)."""
