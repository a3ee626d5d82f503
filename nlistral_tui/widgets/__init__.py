"""Reusable widgets of the review app (one per module)."""
