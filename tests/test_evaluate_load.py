"""Evaluate loads the base as the run that trained the adapter loaded it (the record beside the adapter)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pipeline.quantization import BASE_LOAD_FILE, BaseLoad, eval_load, read_base_load, write_base_load

NF4, DENSE = BaseLoad("nf4", "bfloat16"), BaseLoad("none", "bfloat16")


def test_on_cuda_the_record_decides_and_a_dense_adapter_needs_no_4bit():
    assert eval_load(NF4, device="cuda") == eval_load(NF4, device="cuda", four_bit=True)
    assert eval_load(NF4, device="cuda").four_bit
    dense = eval_load(DENSE, device="cuda")
    assert (dense.four_bit, dense.dtype, dense.warning) == (False, "bfloat16", None)
    assert not eval_load(BaseLoad("none", "float32"), device="cuda").four_bit


def test_an_explicit_request_that_contradicts_the_record_is_refused_and_says_why():
    with pytest.raises(ValueError, match=r"trained on a none base computing in bfloat16, but a 4-bit base"):
        eval_load(DENSE, device="cuda", four_bit=True)
    with pytest.raises(ValueError, match=f"nf4 base.*dense base was asked for.*{BASE_LOAD_FILE}"):
        eval_load(NF4, device="cuda", four_bit=False)


def test_without_a_record_cuda_keeps_nf4_and_warns_for_an_adapter_only():
    old = eval_load(None, device="cuda")
    assert old.four_bit and old.dtype == "bfloat16" and BASE_LOAD_FILE in (old.warning or "")
    assert "quantization: none" in (old.warning or "")
    alone = eval_load(None, device="cuda", has_adapter=False)  # a base alone: nothing to match, no bitsandbytes
    assert alone.warning is None and not alone.four_bit and alone.dtype == "bfloat16"
    assert eval_load(None, device="cuda", has_adapter=False, four_bit=True).four_bit
    assert not eval_load(None, device="cuda", four_bit=False).four_bit


@pytest.mark.parametrize("record", [None, NF4, DENSE, BaseLoad("none", "float32")])
def test_on_cpu_it_is_float32_and_dense_as_before(record):
    assert eval_load(record, device="cpu") == eval_load(record, device="cpu", four_bit=False)
    decided = eval_load(record, device="cpu")
    assert (decided.four_bit, decided.dtype, decided.warning) == (False, "float32", None)
    assert eval_load(record, device="cpu", four_bit=True).four_bit  # the 4-bit check on CPU still works


def test_the_record_round_trips_and_a_broken_one_is_an_error(tmp_path: Path):
    assert read_base_load(tmp_path) is None
    write_base_load(tmp_path, DENSE)
    assert json.loads((tmp_path / BASE_LOAD_FILE).read_text()) == {"quantization": "none", "dtype": "bfloat16"}
    assert read_base_load(tmp_path) == DENSE
    (tmp_path / BASE_LOAD_FILE).write_text('{"quantization": "int8", "dtype": "bfloat16"}')
    with pytest.raises(ValueError, match="unknown load settings"):
        read_base_load(tmp_path)
    (tmp_path / BASE_LOAD_FILE).write_text("{")
    with pytest.raises(ValueError, match="cannot read how training loaded the base"):
        read_base_load(tmp_path)


def test_a_dense_adapter_decides_and_loads_without_bitsandbytes(tiny_model_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from pipeline.evaluate.loading import LoadError, decide_load, load_model

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` now fails
    adapter = tmp_path / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                   LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"])).save_pretrained(adapter)
    write_base_load(adapter, DENSE)
    assert decide_load(adapter, "cuda", None).four_bit is False
    loaded = load_model(adapter, None, device="cpu")
    assert loaded.mode == "float32 base + LoRA (unmerged)" and loaded.warning is None
    write_base_load(adapter, NF4)
    with pytest.raises(LoadError, match="dense base was asked for"):
        decide_load(adapter, "cuda", False)
    (adapter / BASE_LOAD_FILE).unlink()
    assert decide_load(adapter, "cuda", None).warning
    with pytest.raises(LoadError, match=r"4-bit loading needs bitsandbytes"):
        load_model(adapter, None, device="cpu", four_bit=True)


@pytest.mark.slow
def test_training_records_how_it_loaded_the_base_and_evaluate_reads_it(tiny_model_dir: Path, tmp_path: Path):
    from exports.formats import inst_text, label_target, user_prompt
    from pipeline.evaluate.loading import decide_load
    from pipeline.train.config import load_config
    from pipeline.train.runner import run_training

    rows = [{"id": i, "text": inst_text(user_prompt(f"A cat {i}.", "A cat."), label_target(i % 2))}
            for i in range(4)]
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = load_config(None, [f"base_model={tiny_model_dir}", f"data={data}", f"output_dir={tmp_path / 'run'}",
                                "lora_r=2", "lora_alpha=4", "batch_size=2", "micro_batch_size=2", "max_steps=1",
                                "eval_fraction=0", "early_stopping_patience=0", "gradient_checkpointing=none", "cartography=false"])
    result = run_training(config, db_path=tmp_path / "t.db")
    assert result.status == "completed", result.error
    assert result.adapter_dir is not None
    assert read_base_load(result.adapter_dir) == BaseLoad("none", "float32")  # a CPU run: plain float32 LoRA
    assert decide_load(result.adapter_dir, "cuda", None) == eval_load(BaseLoad("none", "float32"), device="cuda")
