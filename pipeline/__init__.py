"""Headless work: the `nlistral` CLI, import, stats, model clients, generation, training, evaluation."""
