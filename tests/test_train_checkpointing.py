"""Which decoder layers are checkpointed (pipeline.train.checkpointing): the plan from memory, the bytes a layer
keeps measured on the model, the first N layers checkpointed in a real run, and the restart with every layer
checkpointed when the first step runs out of memory. Cards are simulated (their free memory given)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline.gpu_memory import GIB, Card
from pipeline.train import checkpointing
from pipeline.train.checkpointing import (
    HEADROOM,
    LayerBytes,
    activation_bytes,
    decoder_layers,
    fewest_checkpointed,
    largest_micro_batch_tokens,
    measure_layer_bytes,
)
from pipeline.train.config import ConfigError, load_config
from pipeline.train.runner import run_training

# One decoder layer of the Mistral-7B shape with LoRA r16 (dropout 0.05) on q, k, v, o in bf16, as
# measure_layer_bytes measured it on the development VM (CPU, SDPA); a checkpointed layer keeps its bf16 input.
MISTRAL_7B = LayerBytes(full=205_700, checkpointed=2 * 4096)


def test_more_memory_checkpoints_fewer_layers_and_every_plan_fits():
    tokens = 16 * 299  # ablation0's micro-batch of 16 examples at the real mean length
    previous = 33
    for gib in (4, 8, 12, 16, 24, 32, 40, 48, 80):
        chosen = fewest_checkpointed(32, MISTRAL_7B, tokens, gib * GIB)
        if chosen is None:
            assert activation_bytes(32, 32, MISTRAL_7B, tokens) > gib * GIB * (1 - HEADROOM)
            continue
        assert chosen <= previous
        assert activation_bytes(32, chosen, MISTRAL_7B, tokens) <= gib * GIB * (1 - HEADROOM)
        if chosen:  # and one layer fewer would not have fitted
            assert activation_bytes(32, chosen - 1, MISTRAL_7B, tokens) > gib * GIB * (1 - HEADROOM)
        previous = chosen
    assert fewest_checkpointed(32, MISTRAL_7B, tokens, 80 * GIB) == 0  # an H100 holds ablation0 unchecked
    assert fewest_checkpointed(32, MISTRAL_7B, tokens, 4 * GIB) == 32  # an 8 GiB card after loading: all
    assert fewest_checkpointed(32, MISTRAL_7B, tokens, GIB // 2) is None


def test_the_largest_micro_batch_is_the_longest_rows_together_or_padded():
    lengths = [300, 120, 512, 250, 80]
    assert largest_micro_batch_tokens(lengths, 2, packed=True) == 812
    assert largest_micro_batch_tokens(lengths, 2, packed=False) == 1024
    assert largest_micro_batch_tokens(lengths, 16, packed=True) == sum(lengths)
    assert largest_micro_batch_tokens([], 16, packed=True) == 0


@pytest.fixture
def lora_model(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    def make(dropout: float):
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
        return get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout,
                                               target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    return make


def test_a_layer_s_bytes_are_measured_per_token_and_count_the_lora_dropout_copies(lora_model):
    model = lora_model(0.05)
    hidden = model.config.hidden_size
    short, long = ({"input_ids": torch.randint(3, 200, (1, n))} for n in (40, 160))
    a, b = measure_layer_bytes(model, short), measure_layer_bytes(model, long)
    assert a.checkpointed == b.checkpointed == 4 * hidden  # the float32 layer input
    assert abs(a.full - b.full) <= 0.02 * b.full  # per token, whatever the length
    assert a.full > 10 * a.checkpointed  # a layer keeps far more than its input
    without_dropout = measure_layer_bytes(lora_model(0.0), long)
    assert without_dropout.full < b.full  # dropout keeps a masked copy of each projection's input
    # the measurement leaves nothing behind: no gradients, checkpointing flags as they were
    assert all(p.grad is None for p in model.parameters())
    assert [layer.gradient_checkpointing for layer in decoder_layers(model)] == [False, False]


def test_auto_checkpoints_as_few_layers_as_the_card_holds(lora_model):
    model = lora_model(0.05)
    batch = {"input_ids": torch.randint(3, 200, (1, 64))}
    config = load_config(None, ["lora_alpha=16"])
    per_token = measure_layer_bytes(model, batch)
    roomy = checkpointing.decide(config, model, Card(free=GIB), 0, 1000, batch)
    assert (roomy.checkpointed, roomy.config_value) == (0, "none") and "no layer" in roomy.note
    # With two layers, checkpointing one saves nothing (the recomputed layer needs its activations back in the
    # backward), so a card between the two plans checkpoints both.
    assert activation_bytes(2, 1, per_token, 1000) > activation_bytes(2, 0, per_token, 1000)
    tight = int(activation_bytes(2, 2, per_token, 1000) / (1 - HEADROOM)) + 1
    assert tight < activation_bytes(2, 0, per_token, 1000) / (1 - HEADROOM)
    both = checkpointing.decide(config, model, Card(free=tight), 0, 1000, batch)
    assert (both.checkpointed, both.config_value) == (2, "full") and "every layer (2)" in both.note
    capped = checkpointing.decide(config, model, Card(free=GIB, cap=tight + 5000), 5000, 1000, batch)
    assert capped.checkpointed == 2 and "max_memory_gib cap" in capped.note
    starved = checkpointing.decide(config, model, Card(free=1000), 0, 1000, batch)
    assert starved.checkpointed == 2 and "lower micro_batch_size" in starved.note
    on_cpu = checkpointing.decide(config, model, None, 0, 1000, None)
    assert on_cpu.checkpointed == 2 and "on CPU" in on_cpu.note
    named = checkpointing.decide(load_config(None, ["lora_alpha=16", "gradient_checkpointing=1"]), model, None, 0,
                                 1000, None)
    assert named.checkpointed == 1 and "set in the config" in named.note
    with pytest.raises(ConfigError, match="the model has 2 decoder layers"):
        checkpointing.decide(load_config(None, ["lora_alpha=16", "gradient_checkpointing=3"]), model, None, 0,
                             1000, None)


class _Flags:
    """Records, at each step, which decoder layers are checkpointed; can fail the first step with an OOM."""

    def __init__(self, fail_unless_all: bool = False) -> None:
        from transformers import TrainerCallback

        outer = self
        self.seen: list[list[bool]] = []

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, model=None, **kwargs):
                flags = [bool(layer.gradient_checkpointing) for layer in decoder_layers(model)]
                outer.seen.append(flags)
                if fail_unless_all and not all(flags):
                    raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

        self.callback = Callback()


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "expected"), [("1", [True, False]), ("none", [False, False]),
                                                   ("full", [True, True])])
def test_a_run_checkpoints_exactly_the_layers_it_planned(tiny_model_dir, tmp_path, db_path, setting, expected):
    data = _sft_export(tmp_path)
    flags = _Flags()
    config = load_config(None, [f"base_model={tiny_model_dir}", f"data={data}", f"output_dir={tmp_path / 'run'}",
                                "lora_r=4", "lora_alpha=8", "batch_size=2", "micro_batch_size=2", "max_steps=2",
                                "warmup_steps=0", "eval_fraction=0", "early_stopping_patience=0",
                                f"gradient_checkpointing={setting}"])
    result = run_training(config, db_path=db_path, callbacks=(flags.callback,))
    assert result.status == "completed", result.error
    assert flags.seen == [expected, expected]


@pytest.mark.slow
def test_an_out_of_memory_first_step_restarts_with_every_layer_checkpointed(tiny_model_dir, tmp_path, db_path,
                                                                           monkeypatch):
    monkeypatch.setattr(checkpointing, "_card", lambda config, hw: (Card(free=64 * GIB), 0))  # a roomy "GPU"
    data = _sft_export(tmp_path)
    flags = _Flags(fail_unless_all=True)
    config = load_config(None, [f"base_model={tiny_model_dir}", f"data={data}", f"output_dir={tmp_path / 'run'}",
                                "lora_r=4", "lora_alpha=8", "batch_size=2", "micro_batch_size=2", "max_steps=2",
                                "warmup_steps=0", "eval_fraction=0", "early_stopping_patience=0"])
    result = run_training(config, db_path=db_path, callbacks=(flags.callback,))
    assert result.status == "completed", result.error
    assert flags.seen == [[False, False], [True, True], [True, True]]  # planned none; ran out; all, two steps
    events = [json.loads(line) for line in result.log_path.read_text(encoding="utf-8").splitlines()]
    notes = [e for e in events if e["event"] == "checkpointing"]
    assert [e["checkpointed"] for e in notes] == [0, 2]
    assert [e["setting"] for e in notes] == ["none", "full"]  # the resolved setting, as the config would name it
    assert "no layer" in notes[0]["note"] and "ran out of memory in the first step" in notes[1]["note"]
    assert result.metrics["global_step"] == 2


@pytest.mark.slow
def test_an_out_of_memory_with_layers_named_in_the_config_is_not_retried(tiny_model_dir, tmp_path, db_path):
    data = _sft_export(tmp_path)
    flags = _Flags(fail_unless_all=True)
    config = load_config(None, [f"base_model={tiny_model_dir}", f"data={data}", f"output_dir={tmp_path / 'run'}",
                                "lora_r=4", "lora_alpha=8", "batch_size=2", "micro_batch_size=2", "max_steps=2",
                                "warmup_steps=0", "eval_fraction=0", "early_stopping_patience=0",
                                "gradient_checkpointing=none"])
    result = run_training(config, db_path=db_path, callbacks=(flags.callback,))
    assert result.status == "failed" and "out of memory" in (result.error or "")
    assert flags.seen == [[False, False]]


def _sft_export(folder: Path) -> Path:
    from exports.formats import cot_target, inst_text, user_prompt

    path = folder / "sft.jsonl"
    rows = [{"id": i, "text": inst_text(user_prompt(f"A dog runs {i}.", f"A dog {i} moves."),
                                        cot_target(f"Step 1: the dog runs {i}.", i % 2))} for i in range(8)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.slow
def test_the_plan_lines_keep_their_capitals(tiny_model_dir, tmp_path, db_path):
    """The log line of a plan note starts upper case and keeps the rest as written (it once printed 'cuda')."""
    lines: list[str] = []
    config = load_config(None, [f"base_model={tiny_model_dir}", f"data={_sft_export(tmp_path)}",
                                f"output_dir={tmp_path / 'run'}", "lora_r=4", "lora_alpha=8", "batch_size=2",
                                "micro_batch_size=2", "max_steps=1", "warmup_steps=0", "eval_fraction=0",
                                "early_stopping_patience=0", "cartography=false"])
    result = run_training(config, db_path=db_path, echo=lines.append)
    assert result.status == "completed", result.error
    assert "Compile auto: off (it was measured to pay on CUDA only)" in lines
    assert "Checkpointing auto: every layer (on CPU it is not planned)" in lines


def test_the_trainer_arguments_use_transformers_current_names():
    """transformers 5.23 renamed TrainingArguments' gradient_checkpointing* to activation_checkpointing*; the old
    names print a FutureWarning in every run."""
    import warnings

    from trl.trainer.sft_config import SFTConfig

    from pipeline.train.arguments import common_arguments
    from pipeline.train.hardware import Hardware
    from pipeline.train.model import plan

    hw = Hardware(cuda=False, gpu_name=None, gpu_count=0, bitsandbytes=False, world_size=1, local_rank=0)
    for setting, enabled in (("auto", True), ("3", True), ("none", False)):
        config = load_config(None, ["lora_alpha=16", f"gradient_checkpointing={setting}", "eval_fraction=0",
                                    "early_stopping_patience=0"])
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            args = SFTConfig(**common_arguments(config, plan(config, hw), hw, Path("/tmp/unused"), False))
        assert args.activation_checkpointing is enabled and args.gradient_checkpointing is enabled


def test_measuring_a_compiled_model_counts_what_the_eager_one_does(lora_model):
    """train_speed.py measures variants one after another on one model, whose layers an earlier variant may have
    compiled; the measurement runs them eagerly, so the hooks still see every saved tensor."""
    from pipeline.train.model import compile_decoder_layers

    model = lora_model(0.0)
    batch = {"input_ids": torch.randint(3, 200, (1, 48))}
    eager = measure_layer_bytes(model, batch)
    compile_decoder_layers(model)
    assert measure_layer_bytes(model, batch) == eager
