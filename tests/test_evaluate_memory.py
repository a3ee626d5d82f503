"""Evaluation sized by the memory of the card present (pipeline.evaluate.memory): the cache budget and batch
plan from the memory available under a --max-memory cap, and the automatic 4-bit choice on a small card.
Cards are simulated (their free memory given); the model sizes are real, counted from config files."""
from __future__ import annotations

import json

import pytest

from pipeline import gpu_memory
from pipeline.evaluate import loading, memory
from pipeline.evaluate.batching import budget_batches

GIB = gpu_memory.GIB
KV_7B = 2 * 32 * 8 * 128 * 2  # bytes of cache per token of the Mistral-7B shape in bf16 (128 KiB)


@pytest.fixture
def mistral_7b_config(tmp_path):
    """A folder with only the config.json of Mistral-7B-v0.3's shape: enough to count its weights."""
    config = {"model_type": "mistral", "architectures": ["MistralForCausalLM"], "vocab_size": 32768,
              "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 32768, "rope_theta": 1e6,
              "tie_word_embeddings": False}
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_the_cap_limits_what_is_available_and_the_headroom_scales_with_it():
    card = gpu_memory.Card(free=70 * GIB)
    assert card.available(allocated=5 * GIB) == 70 * GIB
    capped = gpu_memory.Card(free=70 * GIB, cap=8 * GIB)
    assert capped.available(allocated=5 * GIB) == 3 * GIB and capped.available(allocated=9 * GIB) == 0
    assert memory.reserve(62 * GIB) == memory.CACHE_RESERVE_BYTES  # a large card: the headroom it always had
    assert memory.reserve(4 * GIB) == GIB  # a small budget keeps a quarter, not 12 GiB it does not have
    assert memory.cache_token_budget(0, KV_7B) == 1


@pytest.mark.parametrize("available_gib", [60, 20, 3])  # an H100 after weights, a 24 GiB budget, an 8 GiB one
def test_every_planned_batch_fits_the_budget_and_every_prompt_is_planned_once(available_gib):
    lengths = [100 + (i * 37) % 300 for i in range(2000)]
    available = available_gib * GIB
    batches = budget_batches(lengths, 200, available, KV_7B)
    assert sorted(i for b in batches for i in b) == list(range(2000))
    room = available - memory.reserve(available)
    for batch in batches:
        assert len(batch) * (lengths[batch[0]] + 200) * KV_7B <= room or len(batch) == 1
    assert max(len(b) for b in batches) >= 2  # even 8 GiB holds several rows of the 7B shape


def test_a_smaller_budget_makes_more_smaller_batches():
    lengths = [163] * 1000
    sizes = [len(budget_batches(lengths, 200, gib * GIB, KV_7B)) for gib in (60, 20, 3)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_weights_are_counted_from_the_config_alone(mistral_7b_config, smollm2_dir):
    assert memory.dense_bytes(str(mistral_7b_config)) == 2 * 7_248_023_552  # Mistral-7B-v0.3's parameter count
    assert memory.dense_bytes(str(smollm2_dir)) == 2 * 134_515_008  # a tied head counted once


def _card(monkeypatch, free_gib: float, allocated_gib: float) -> None:
    monkeypatch.setattr(gpu_memory, "read_card", lambda device, cap=None: gpu_memory.Card(
        int(free_gib * GIB), int(cap * GIB) if cap is not None else None))
    monkeypatch.setattr(gpu_memory, "allocated", lambda device: int(allocated_gib * GIB))


def test_a_4bit_base_stays_4bit_where_its_bf16_copy_does_not_fit(monkeypatch, mistral_7b_config):
    _card(monkeypatch, free_gib=70, allocated_gib=4.1)  # an H100 holding the 4-bit 7B
    assert loading.unpacked_does_not_fit(str(mistral_7b_config), None) is None
    note = loading.unpacked_does_not_fit(str(mistral_7b_config), 8)  # --max-memory 8: an 8 GiB card
    assert note is not None and "13.5 GiB" in note and "8.0 GiB" in note and "4-bit" in note
    _card(monkeypatch, free_gib=11.5, allocated_gib=4.1)  # a 16 GiB card
    assert loading.unpacked_does_not_fit(str(mistral_7b_config), None) is not None


def test_a_dense_base_larger_than_the_card_is_refused_before_loading(monkeypatch, mistral_7b_config):
    _card(monkeypatch, free_gib=7.5, allocated_gib=0)
    with pytest.raises(loading.LoadError, match=r"needs 13\.5 GiB in bfloat16.*4-bit"):
        loading.check_dense_fits(str(mistral_7b_config), "bfloat16", None)
    _card(monkeypatch, free_gib=70, allocated_gib=0)
    loading.check_dense_fits(str(mistral_7b_config), "bfloat16", None)  # fits: no error
