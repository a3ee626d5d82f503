"""Timestamps as stored in the database: UTC ISO-8601 with milliseconds."""
from __future__ import annotations

from datetime import UTC, datetime


def now() -> str:
    """The current UTC time as an ISO-8601 string."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
