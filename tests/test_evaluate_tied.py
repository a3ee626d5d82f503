"""Evaluate's fast path (merge_to_dense) on bases whose output head is tied to the input embeddings."""
from __future__ import annotations

from pathlib import Path

import pytest


def _tied_llama(out: Path) -> Path:
    """A tiny random LlamaForCausalLM with tie_word_embeddings=True and the tiny model's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from pipeline.tiny_model import build_tokenizer

    tokenizer = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _adapter(base: Path, out: Path) -> Path:
    """A LoRA adapter on base with random B matrices (so it changes the outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                          LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    peft.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tied(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tied tiny base and an adapter on it."""
    folder = tmp_path_factory.mktemp("tied")
    base = _tied_llama(folder / "base")
    return base, _adapter(base, folder / "adapter")


def _greedy(loaded, prompts: list[list[int]], tokens: int) -> list[list[int]]:
    from pipeline.evaluate.generation import generate

    out: dict[int, list[int]] = {}
    for batch in generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=tokens, batch_size=4,
                          stop_at_json_end=False, stop_at_eos=False):
        out.update({i: list(o.token_ids) for i, o in zip(batch.indices, batch.outputs)})
    return [out[i] for i in range(len(prompts))]


def _prompts(tokenizer) -> list[list[int]]:
    from pipeline.evaluate.prompts import encode_prompt, prompt_text

    pairs = [("A man plays a guitar.", "Someone makes music."), ("Cats sleep.", "A dog runs."), ("x", "y")]
    return [encode_prompt(tokenizer, prompt_text(p, h)) for p, h in pairs]


def test_merge_to_dense_keeps_a_tied_head_tied(tied):
    from pipeline.evaluate.loading import load_model
    from pipeline.evaluate.merge import merge_to_dense

    base, adapter = tied
    peft = load_model(adapter, str(base), device="cpu", merge=False).model
    dense = merge_to_dense(peft, fold_lora=False)
    assert dense.config.tie_word_embeddings
    assert dense.get_output_embeddings().weight.data_ptr() == dense.get_input_embeddings().weight.data_ptr()
    assert not dense.get_output_embeddings().weight.is_meta


def test_fast_path_predicts_what_the_plain_peft_model_predicts_on_a_tied_base(tied):
    from pipeline.evaluate.loading import load_model
    from pipeline.evaluate.merge import top1_agreement, top1_predictions

    base, adapter = tied
    plain = load_model(adapter, str(base), device="cpu", merge=False)
    fast = load_model(adapter, str(base), device="cpu", merge=True)
    folded = load_model(adapter, str(base), device="cpu", merge=True, fold=True)
    assert fast.mode == "float32 base + LoRA, base dequantised to float32, LoRA unmerged"
    prompts = _prompts(plain.tokenizer)
    reference = _greedy(plain, prompts, 8)
    assert _greedy(fast, prompts, 8) == reference
    assert _greedy(folded, prompts, 8) == reference
    ref = top1_predictions(plain.model, prompts)
    assert top1_agreement(ref, top1_predictions(fast.model, prompts)).rate == 1.0


@pytest.mark.slow
def test_fast_path_on_smollm2_matches_the_plain_peft_model(smollm2_dir, tmp_path):
    from pipeline.evaluate.loading import load_model

    adapter = _adapter(smollm2_dir, tmp_path / "adapter")
    plain = load_model(adapter, str(smollm2_dir), device="cpu", merge=False)
    fast = load_model(adapter, str(smollm2_dir), device="cpu", merge=True)
    # Its own chat layout, not the Mistral prompt (training and evaluate do not use its template yet).
    texts = ["Premise: A man plays a guitar. Hypothesis: Someone makes music. Label:", "Cats sleep. Dogs"]
    prompts = [plain.tokenizer(t)["input_ids"] for t in texts]
    assert _greedy(fast, prompts, 4) == _greedy(plain, prompts, 4)
