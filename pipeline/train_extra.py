"""Whether the optional `train` extra (torch, transformers, ...) is installed, and what to do when not."""
from __future__ import annotations

import importlib.util

# What `pip install -e '.[train]'` brings (pyproject.toml), by import name; evaluate needs the first three.
TRAIN_MODULES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "tensorboard")
EVALUATE_MODULES = TRAIN_MODULES[:3]
INSTALL = "pip install -e '.[train]'"


def missing_modules(names: tuple[str, ...] = TRAIN_MODULES) -> list[str]:
    """The modules among names that cannot be imported here (found without importing them)."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # an import hook that refuses it, or a half-removed package
            found = False
        if not found:
            missing.append(name)
    return missing


def missing_message(what: str, missing: list[str]) -> str:
    """What to tell a user whose `what` (e.g. "nlistral train") needs modules of the train extra."""
    return (f"{what} needs the optional train extra, and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install it in this environment: {INSTALL} "
            "(on a CUDA machine, first the torch build for your CUDA version, see README), then run it again.")
