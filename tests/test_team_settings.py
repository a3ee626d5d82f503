"""The config keys of team review (`reasons`, `guidelines`) and the demo's guidelines placed beside its store."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.demo import open_demo
from pipeline.guidelines import GuidelinesError, guidelines_path, read_guidelines
from pipeline.settings import DEFAULT_REASONS, Settings, SettingsError, load_settings


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_reasons_default_and_configured(tmp_path):
    assert Settings().reasons == DEFAULT_REASONS and len(DEFAULT_REASONS) == 6
    loaded = load_settings(_config(tmp_path, 'reasons = [" label flipped ", "thought truncated"]\n'))
    assert loaded.reasons == ("label flipped", "thought truncated")


@pytest.mark.parametrize("value", ['[]', '["a", " "]', '["a", "a"]', '"formatting"', '[1]',
                                   "[" + ", ".join(f'"r{i}"' for i in range(10)) + "]"])
def test_bad_reasons_are_refused_saying_what_fits(tmp_path, value):
    path = _config(tmp_path, f"reasons = {value}\n")
    with pytest.raises(SettingsError, match=r"reasons .* must be a list of 1 to 9 different non-empty strings"):
        load_settings(path)


def test_guidelines_path_from_the_config_or_beside_the_store(tmp_path):
    store = tmp_path / "stores" / "team.db"
    assert guidelines_path(Settings(), store) == tmp_path / "stores" / "GUIDE.md"
    config = _config(tmp_path, 'guidelines = "docs/GUIDE.md"\n')
    assert guidelines_path(load_settings(config), store) == tmp_path / "docs" / "GUIDE.md"
    assert guidelines_path(Settings(guidelines=str(tmp_path / "abs.md")), store) == tmp_path / "abs.md"
    with pytest.raises(SettingsError, match="guidelines"):
        load_settings(_config(tmp_path, 'guidelines = ""\n'))


def test_read_guidelines_says_what_is_wrong(tmp_path):
    with pytest.raises(GuidelinesError, match=r"No guidelines at .*GUIDE.md: write the team's guide there"):
        read_guidelines(tmp_path / "GUIDE.md")
    big = tmp_path / "big.md"
    big.write_bytes(b"#" * 600_000)
    with pytest.raises(GuidelinesError, match="shorten the guide"):
        read_guidelines(big)
    latin = tmp_path / "latin.md"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(GuidelinesError, match="save it as UTF-8"):
        read_guidelines(latin)


def test_the_demo_places_its_guide_and_never_overwrites_one(tmp_path):
    store = tmp_path / "demo.db"
    opened = open_demo(store)
    assert opened.guide == tmp_path / "GUIDE.md" and "# Reviewing NLI reflections" in opened.guide.read_text()
    (tmp_path / "GUIDE.md").write_text("# ours\n")
    assert open_demo(store).guide is None and (tmp_path / "GUIDE.md").read_text() == "# ours\n"
