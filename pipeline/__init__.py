"""Headless work: the `nlistral` CLI, import, stats, model clients, generation, training, evaluation."""

import db  # noqa: F401  (first, so that sqlite-utils loads without pandas / numpy: see db/_light_import.py)
