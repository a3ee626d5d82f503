"""Shared fixtures: temporary databases, the real data beside the project (skipped when absent)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_mistral import TEST_KEY, FakeMistral

from db import open_db

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip: a user's fresh clone does not have it."""
    if not (SHARED_DATA / "seed_sample" / "sample.csv").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (only present beside the project in CI/dev)")
    return SHARED_DATA


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a fresh database file."""
    return tmp_path / "test.db"


@pytest.fixture
def db(db_path: Path):
    """A fresh, migrated database."""
    store = open_db(db_path)
    yield store
    store.conn.close()


@pytest.fixture
def seed_db(db, shared_data: Path):
    """The original pipeline's seed sample imported: 100 examples, 100 thoughts, 33 reflections."""
    from pipeline.importing import import_file

    seed = shared_data / "seed_sample"
    import_file(db, seed / "sample.csv")
    import_file(db, seed / "sample_thoughts.json", model="open-mistral-7b")
    import_file(db, seed / "sample_reflections.json", model="open-mistral-nemo")
    return db


@pytest.fixture
def demo_db_path(tmp_path: Path) -> Path:
    """A freshly built demo database (45 hand-written examples)."""
    from pipeline.demo import build_demo

    return build_demo(tmp_path / "demo.db")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Mistral and its tokenizer, saved once per test session (no hub)."""
    from pipeline.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_mistral"))


@pytest.fixture
def keyless_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No API key of either backend, no user config file, tmp_path as the working directory."""
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("NLISTRAL_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def api_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """MISTRAL_API_KEY set to the fake server's key, no user config file, tmp_path as the working directory."""
    monkeypatch.setenv("MISTRAL_API_KEY", TEST_KEY)
    monkeypatch.setenv("NLISTRAL_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.chdir(tmp_path)
    return TEST_KEY


@pytest.fixture
def fake(api_env: str) -> Iterator[FakeMistral]:
    """A fake Mistral-compatible server that takes api_env's key (no wait after a 429)."""
    with FakeMistral(api_key=api_env, retry_after="0", latency_s=0.005) as server:
        yield server


@pytest.fixture(scope="session")
def smollm2_dir(pytestconfig: pytest.Config) -> Path:
    """The real SmolLM2-135M-Instruct folder (tied embeddings), built once and cached; skipped when not installable."""
    from smollm2 import smollm2_folder

    return smollm2_folder(pytestconfig)
