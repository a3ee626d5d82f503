"""A tiny random Mistral model and a small byte-level BPE tokenizer, built locally (no hub).

Used by the CPU tests, by the `smoke` training preset and wherever a real checkpoint is absent.
The tokenizer mimics Mistral's: `<s>`/`</s>`/`<unk>`, `[INST]`/`[/INST]` as control tokens, BOS
added on encode, no pad token, and a Mistral-style chat template.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
TINY_DIR_MARKER = "tiny_random_mistral"


def _training_text() -> list[str]:
    """Text the tokenizer learns merges from: the packaged demo data and the prompt strings."""
    from exports import formats
    from pipeline.demo import demo_files

    lines = [formats.INSTRUCTION_COT, formats.INSTRUCTION_LABEL_ONLY,
             '{"thought_process": "Step 1: ...", "predicted_label": 1}', "Premise: Hypothesis:"]
    for path in demo_files().values():
        lines.extend(path.read_text(encoding="utf-8").splitlines())
    return lines


def build_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE PreTrainedTokenizerFast (every string encodes; no unknown characters)."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_training_text(), trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # transformers leaves __init__ untyped
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        additional_special_tokens=["[INST]", "[/INST]"], padding_side="right")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(out_dir: Path, *, seed: int = 0, hidden_size: int = 64, layers: int = 2,
                     vocab_size: int = 512) -> Path:
    """Save a random MistralForCausalLM (float32) and its tokenizer to out_dir; returns out_dir."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(vocab_size)
    config = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2, head_dim=hidden_size // 4,
        max_position_embeddings=2048, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = MistralForCausalLM(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / TINY_DIR_MARKER).write_text("random weights: for tests and smoke runs only\n")
    return out_dir
