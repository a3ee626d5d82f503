"""Evaluation with the tiny random Mistral and a LoRA adapter: decoding mechanics, merge, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import open_db
from pipeline.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter on the tiny model with random B matrices (so it changes the outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    out = tmp_path_factory.mktemp("adapter")
    peft.save_pretrained(out)
    return out


def _prompts(tokenizer):
    from pipeline.evaluate.prompts import encode_prompt, prompt_text

    pairs = [("A man plays a guitar on the corner.", "Someone makes music."), ("Cats sleep.", ("A dog runs away "
             "from the old house by the river.")), ("x", "y"), ("The treaty was signed in 1648.", "It is old.")]
    return [encode_prompt(tokenizer, prompt_text(p, h)) for p, h in pairs]


@pytest.mark.parametrize("prefill_tokens", [32768, 300])  # one prefill chunk, or chunks of 1-2 rows
def test_batched_left_padded_decoding_matches_one_at_a_time_generate(tiny_model_dir, prefill_tokens):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipeline.evaluate.generation import generate

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = _prompts(tokenizer)
    assert len({len(p) for p in prompts}) == len(prompts)  # different lengths: padding is exercised
    ours = {}
    for batch in generate(model, tokenizer, prompts, max_new_tokens=10, batch_size=3, check_every=3,
                          stop_at_json_end=False, stop_at_eos=False, prefill_tokens=prefill_tokens):
        assert list(batch.indices) == sorted(batch.indices, key=lambda i: -len(prompts[i]))  # length-sorted
        ours.update({i: o for i, o in zip(batch.indices, batch.outputs)})
    assert sorted(ours) == [0, 1, 2, 3]
    for i, prompt in enumerate(prompts):
        with torch.inference_mode():
            ref = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                 max_new_tokens=10, min_new_tokens=10, do_sample=False,
                                 pad_token_id=tokenizer.eos_token_id)[0, len(prompt):].tolist()
        assert list(ours[i].token_ids) == ref  # the new tokens only, equal to unpadded greedy decoding
        assert ours[i].text == tokenizer.decode(ref) and ours[i].stop == "length"
        assert ours[i].prompt_tokens == len(prompt)


def test_a_batch_that_runs_out_of_memory_is_split_and_retried(tiny_model_dir, monkeypatch):
    """Out of memory is never a crash while a batch can be halved: the same answers come back, every prompt once."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipeline.evaluate import generation

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = _prompts(tokenizer)
    settings = dict(max_new_tokens=6, check_every=2, stop_at_json_end=False, stop_at_eos=False)
    whole = {i: o for b in generation.generate(model, tokenizer, prompts, batch_size=4, **settings)
             for i, o in zip(b.indices, b.outputs)}
    real_prefill, tried = generation._prefill, []

    def small_card(model, ids, *args):  # a card that holds the caches of one row at a time
        tried.append(ids.shape[0])
        if ids.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_prefill(model, ids, *args)

    monkeypatch.setattr(generation, "_prefill", small_card)
    batches = list(generation.generate(model, tokenizer, prompts, batch_size=4, **settings))
    assert tried == [4, 2, 1, 1, 2, 1, 1] and [len(b.indices) for b in batches] == [1, 1, 1, 1]
    split = {i: o for b in batches for i, o in zip(b.indices, b.outputs)}
    assert sorted(split) == [0, 1, 2, 3] and split == whole

    monkeypatch.setattr(generation, "_prefill", lambda *a: (_ for _ in ()).throw(torch.OutOfMemoryError("one row")))
    with pytest.raises(torch.OutOfMemoryError):  # one row that does not fit: nothing left to split
        list(generation.generate(model, tokenizer, prompts[:1], batch_size=1, **settings))


def test_merged_adapter_computes_the_unmerged_function(tiny_model_dir, adapter_dir):
    from pipeline.evaluate.loading import load_model
    from pipeline.evaluate.merge import top1_agreement, top1_predictions

    unmerged = load_model(adapter_dir, None, device="cpu", merge=False)
    folded = load_model(adapter_dir, None, device="cpu", merge=True, fold=True)
    dense = load_model(adapter_dir, None, device="cpu", merge=True)
    base = load_model(None, str(tiny_model_dir), device="cpu")
    assert unmerged.mode == "float32 base + LoRA (unmerged)"
    assert folded.mode == "float32 base + LoRA merged into float32"
    assert dense.mode == "float32 base + LoRA, base dequantised to float32, LoRA unmerged"
    assert not any("lora" in n for n, _ in folded.model.named_parameters())
    sequences = _prompts(unmerged.tokenizer)
    a = top1_predictions(unmerged.model, sequences)
    assert top1_agreement(a, top1_predictions(folded.model, sequences)).rate == 1.0
    assert top1_agreement(a, top1_predictions(dense.model, sequences)).rate == 1.0
    assert top1_agreement(a, top1_predictions(base.model, sequences)).rate < 0.9  # the adapter matters


def test_4bit_merge_agrees_with_the_4bit_model_plus_adapter(adapter_dir):
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is only installed where 4-bit loading is used")
    from pipeline.evaluate.loading import load_model
    from pipeline.evaluate.merge import merge_to_dense, top1_agreement, top1_predictions

    unmerged = load_model(adapter_dir, None, device="cpu", four_bit=True, merge=False)
    merged = load_model(adapter_dir, None, device="cpu", four_bit=True, merge=True, fold=True)
    dense = load_model(adapter_dir, None, device="cpu", four_bit=True, merge=True)
    assert merged.mode == "nf4 base + LoRA merged into bfloat16"
    assert dense.mode == "nf4 base + LoRA, base dequantised to bfloat16, LoRA unmerged"
    sequences = _prompts(unmerged.tokenizer)
    ref = top1_predictions(unmerged.model, sequences)
    # A random model's top-1 margins are tiny (here mostly under 0.1 logit), so bf16 rounding decides some
    # positions: demand near-total agreement everywhere and total agreement where the margin is clear.
    again = merge_to_dense(unmerged.model)  # a 4-bit model that has already run (bitsandbytes repacks CPU weights)
    for model in (merged.model, dense.model, again):
        predictions = top1_predictions(model, sequences)
        assert top1_agreement(ref, predictions).rate >= 0.97
        clear = top1_agreement(ref, predictions, min_margin=0.05)
        assert clear.positions >= 100 and clear.rate == 1.0
    with unmerged.model.disable_adapter():  # the scale of a real difference, for contrast
        assert top1_agreement(ref, top1_predictions(unmerged.model, sequences)).rate < 0.9


def test_cli_evaluate_and_compare_end_to_end(tiny_model_dir, adapter_dir, demo_db_path, tmp_path):
    runner = CliRunner()
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["evaluate", "--adapter", str(adapter_dir), "--db", str(demo_db_path),
                                 "--limit", "5", "--batch-size", "2", "--max-new-tokens", "12", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "parse failures" in result.output and "Confusion" in result.output
    summary = json.loads(out.read_text())
    assert summary["predictions"] == 5
    store = open_db(demo_db_path)
    rows = list(store.query("SELECT * FROM generations WHERE kind = 'prediction' AND run_id = ?",
                            [summary["run_id"]]))
    assert len(rows) == 5
    for row in rows:  # random weights: whatever came out is stored as decoded, never given a label it lacks
        assert row["tokens_out"] <= 12 and "[INST]" not in row["raw_response"]
        assert (row["predicted_label"] is None) == (row["parse_status"] == "failed")
    m = summary["metrics"]
    assert m["failed"] == sum(r["parse_status"] == "failed" for r in rows)
    assert m["tp"] + m["fp"] + m["tn"] + m["fn"] + m["failed"] == 5

    base = runner.invoke(app, ["evaluate", "--base", str(tiny_model_dir), "--db", str(demo_db_path), "--limit", "5",
                               "--batch-size", "5", "--max-new-tokens", "12", "--json", str(tmp_path / "b.json")])
    assert base.exit_code == 0, base.output
    other = json.loads((tmp_path / "b.json").read_text())["run_id"]
    compared = runner.invoke(app, ["compare", str(summary["run_id"]), str(other), "--db", str(demo_db_path),
                                   "--json"])
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.output)["common"] == 5
    missing = runner.invoke(app, ["compare", str(other), "99", "--db", str(demo_db_path)])
    assert missing.exit_code == 1 and "no run 99" in missing.output
    not_eval = runner.invoke(app, ["compare", "1", str(other), "--db", str(demo_db_path)])
    assert not_eval.exit_code == 1 and "not an evaluate run" in not_eval.output


def test_cli_evaluate_explains_what_is_missing(demo_db_path, tmp_path):
    runner = CliRunner()
    none = runner.invoke(app, ["evaluate", "--db", str(demo_db_path)])
    assert none.exit_code == 2 and "--adapter" in none.output
    gone = runner.invoke(app, ["evaluate", "--adapter", str(tmp_path / "nope"), "--db", str(demo_db_path)])
    assert gone.exit_code == 1 and "does not exist" in gone.output
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "mistralai/Mistral-7B-v0.3"}))
    hub = runner.invoke(app, ["evaluate", "--adapter", str(bare), "--db", str(demo_db_path)])
    assert hub.exit_code == 1 and "--base" in hub.output


def test_decoding_steps_do_not_copy_the_cache_for_each_query_head(tiny_model_dir, monkeypatch):
    """Grouped-query attention with a padding mask: transformers before 5.23 copied every layer's keys and
    values once per query head at each decoded token (repeat_kv: four copies of the cache per step for
    Mistral-7B), which made `evaluate` 3.5 times slower on an H100 (issue 17). The copies may happen in the
    prefill, never once per new token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.integrations import sdpa_attention

    from pipeline.evaluate.generation import generate

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # grouped-query attention
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    real, calls = sdpa_attention.repeat_kv, []

    def counted(hidden_states, n_rep):
        calls.append(hidden_states.shape[-2])
        return real(hidden_states, n_rep)

    monkeypatch.setattr(sdpa_attention, "repeat_kv", counted)
    copies = []
    for new in (2, 12):
        calls.clear()
        list(generate(model, tokenizer, _prompts(tokenizer), max_new_tokens=new, batch_size=4,
                      stop_at_json_end=False, stop_at_eos=False))
        copies.append(len(calls))
    assert copies[0] == copies[1]  # ten more decoded tokens, not one more copy


def test_decoding_passes_the_cache_under_the_name_the_model_takes(tiny_model_dir, adapter_dir):
    """transformers 5.24 renamed forward's `past_key_values` to `cache` (the old name warns on every call and goes
    in 5.40); a model whose forward still takes `past_key_values` (older transformers, remote code) keeps it. The
    adapter wraps the model (PEFT's forward takes **kwargs), so the name is read from the model it wraps."""
    import inspect
    import warnings

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipeline.evaluate.generation import cache_keyword, generate

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    takes = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    wrapped = PeftModel.from_pretrained(base, adapter_dir).eval()
    assert cache_keyword(base) == cache_keyword(wrapped) == takes

    class Old:
        def forward(self, input_ids, past_key_values=None):  # the shape of forward before 5.24
            raise AssertionError("not called")

    assert cache_keyword(Old()) == "past_key_values"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        outputs = list(generate(wrapped, tokenizer, _prompts(tokenizer), max_new_tokens=3, batch_size=4,
                                stop_at_json_end=False, stop_at_eos=False))
    assert outputs and all(len(o.token_ids) == 3 for batch in outputs for o in batch.outputs)
