"""Headless work: the `nlistral` CLI, import, stats, model clients, generation, training, evaluation."""

import db  # noqa: E402,F401  (first, so that sqlite-utils loads without pandas / numpy: see db/_light_import.py)
