"""Screens and dialogs of the review app (one per module)."""
