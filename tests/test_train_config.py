"""The training config: defaults < YAML < --set, typed values, clear errors, presets, the saved copy."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.train.config import ConfigError, TrainConfig, list_presets, load_config, preset_path, save_config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_defaults_then_file_then_set_in_order(tmp_path):
    path = _write(tmp_path, "lora_r: 8\nlora_alpha: 16\nlearning_rate: 3.0e-4\n")
    config = load_config(path, ["learning_rate=1e-5", "lora_r=4", "lora_r=32"])
    assert config.learning_rate == 1e-5  # "1e-5" is a string to YAML; the float field still reads it
    assert config.lora_r == 32  # the last --set wins
    assert config.lora_alpha == 16  # from the file
    assert config.max_length == TrainConfig().max_length == 512  # untouched default


def test_set_parses_lists_and_booleans(tmp_path):
    path = _write(tmp_path, "lora_alpha: 32\n")
    config = load_config(path, ["lora_targets=[q_proj, v_proj]", "packing=false"])
    assert config.lora_targets == ["q_proj", "v_proj"] and config.packing is False
    assert load_config(path, ["lora_targets=q_proj,o_proj"]).lora_targets == ["q_proj", "o_proj"]


def test_unknown_key_names_key_file_and_a_suggestion(tmp_path):
    path = _write(tmp_path, "lora_alpha: 32\nlora_rank: 8\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "'lora_rank'" in str(err.value) and "did you mean 'lora_r'" in str(err.value)
    with pytest.raises(ConfigError, match=r"--set epochz=3: unknown key 'epochz' \(did you mean 'epochs'\?\)"):
        load_config(_write(tmp_path, "lora_alpha: 32\n"), ["epochz=3"])


@pytest.mark.parametrize("line, key, wanted", [
    ("learning_rate: fast", "learning_rate", "a number"),
    ("lora_r: 16.5", "lora_r", "an integer"),
    ("packing: maybe", "packing", "true or false"),
    ("lora_targets: 3", "lora_targets", "a list of strings"),
])
def test_bad_type_names_key_file_and_expected_type(tmp_path, line, key, wanted):
    path = _write(tmp_path, f"lora_alpha: 32\n{line}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key} must be {wanted}")


def test_lora_alpha_is_required_and_the_fix_is_given(tmp_path):
    path = _write(tmp_path, "lora_r: 8\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "lora_alpha" in str(err.value) and "--set lora_alpha=16" in str(err.value)


@pytest.mark.parametrize("text, sets, key, fragment", [
    ("lora_alpha: 32\nbatch_size: 10\nmicro_batch_size: 4\n", [], "batch_size", "not a multiple of micro_batch_size"),
    ("lora_alpha: 32\neval_fraction: 0\n", [], "early_stopping_patience", "needs eval loss"),
    ("lora_alpha: 32\neval_steps: 40\nsave_steps: 50\n", [], "save_steps", "multiple of eval_steps"),
    ("lora_alpha: 32\nloss: cal-dpo\n", [], "loss", "only applies to method: dpo"),
    ("lora_alpha: 32\nattention: varlen\npacking: false\n", [], "attention", "needs packed batches"),
    ("lora_alpha: 32\nmethod: dpo\nbeta_warmup_steps: 10\nbeta_start: 0.5\n", [], "beta_start", "(0, beta=0.1]"),
    ("lora_alpha: 32\n", ["method=ppo"], "method", "'ppo' is not one of sft, dpo, label-only"),
    ("lora_alpha: 32\nmethod: dpo\n", ["gradient_checkpointing=8"], "gradient_checkpointing",
     "a number of layers is for method sft and label-only"),
    ("lora_alpha: 32\n", ["max_memory_gib=0"], "max_memory_gib", "must be positive"),
    ("lora_alpha: 32\n", ["gradient_checkpointing=selective"], "gradient_checkpointing",
     "is not one of auto, full, none, or a number of decoder layers"),
])
def test_cross_field_errors_name_the_key_and_where_it_was_set(tmp_path, text, sets, key, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, sets)
    message = str(err.value)
    assert f"{key}:" in message and fragment in message
    where = f"--set {sets[0]}" if sets else str(path)
    assert message.startswith(where)


def test_checkpointing_and_packing_combine(tmp_path):
    # Nothing forbids it: the packed boundaries reach each checkpointed layer (see test_train_run).
    config = load_config(_write(tmp_path, "lora_alpha: 32\ngradient_checkpointing: full\npacking: true\n"))
    assert config.gradient_checkpointing == "full" and config.packing


def test_unreadable_or_non_mapping_files_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="a mapping of key: value lines"):
        load_config(_write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(_write(tmp_path, "lora_r: [unclosed\n"))
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(_write(tmp_path, "lora_alpha: 32\n"), ["learning_rate"])


def test_every_preset_loads_and_holds_the_design_values():
    assert {"ablation0", "ablation1", "ablation2", "smoke", "label_only", "dpo", "cal_dpo", "dr_dpo"} <= set(list_presets())
    presets = {name: load_config(preset_path(name)) for name in list_presets()}
    a0, a1, a2 = presets["ablation0"], presets["ablation1"], presets["ablation2"]
    assert (a0.lora_r, a0.lora_alpha, a0.batch_size, a0.learning_rate, a0.epochs) == (16, 32, 16, 2e-4, 2)
    assert (a1.lora_r, a1.lora_alpha, a1.batch_size, a1.learning_rate, a1.gradient_checkpointing, a1.max_memory_gib) == \
        (16, 32, 32, 2e-4, "auto", 16)
    assert (a2.lora_r, a2.lora_alpha, a2.batch_size, a2.learning_rate, a2.epochs, a2.max_grad_norm) == \
        (32, 64, 64, 5e-5, 5, 1.0)
    assert 100 <= a2.warmup_steps <= 150
    for config in (a0, a1, a2):
        assert config.lora_dropout == 0.05 and config.max_length == 512 and config.early_stopping_patience == 3
        assert config.lora_targets == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert presets["smoke"].base_model == "tiny-random"
    assert presets["label_only"].method == "label-only"
    assert {presets[n].loss for n in ("dpo", "cal_dpo", "dr_dpo")} == {"dpo", "cal-dpo", "dr-dpo"}
    assert presets["dr_dpo"].drop_disagreeing_fraction == 0.15
    assert presets["dpo"].beta_warmup_steps > 0


def test_preset_files_hold_only_known_keys_with_comments():
    for name in list_presets():
        text = preset_path(name).read_text(encoding="utf-8")
        assert text.lstrip().startswith("#"), f"{name}.yaml should say what it is for"
        assert set(yaml.safe_load(text)) <= set(TrainConfig().to_dict())


def test_saved_config_reloads_to_the_same_values(tmp_path):
    config = load_config(preset_path("ablation2"), ["data=export:4", "seed=7"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_compile_is_auto_by_default_and_true_false_still_read(tmp_path):
    assert TrainConfig().compile == "auto"
    base = ["lora_alpha=32"]
    assert load_config(None, [*base, "compile=true"]).compile == "on"
    assert load_config(None, [*base, "compile=false"]).compile == "off"
    assert load_config(None, [*base, "compile=auto"]).compile == "auto"
    with pytest.raises(ConfigError, match="compile: 'maybe' is not one of auto, on, off"):
        load_config(None, [*base, "compile=maybe"])
    with pytest.raises(ConfigError, match="compile: is for method sft"):
        load_config(None, [*base, "method=dpo", "compile=true"])
    assert load_config(None, [*base, "method=dpo"]).compile == "auto"  # auto is off for DPO


def test_compile_auto_turns_on_where_it_measured_to_pay():
    from pipeline.train.hardware import Hardware
    from pipeline.train.model import COMPILE_PAYS_TOKENS, decide_compile
    from pipeline.train.runner import tokens_to_train

    gpu = Hardware(cuda=True, gpu_name="H100", gpu_count=1, bitsandbytes=True, world_size=1, local_rank=0)
    cpu = Hardware(cuda=False, gpu_name=None, gpu_count=0, bitsandbytes=False, world_size=1, local_rank=0)
    config = TrainConfig(lora_alpha=32)
    assert decide_compile(config, gpu, COMPILE_PAYS_TOKENS)[0]
    on, why = decide_compile(config, gpu, COMPILE_PAYS_TOKENS - 1)
    assert not on and "pays from about 4,000,000" in why
    assert decide_compile(config, cpu, 10 * COMPILE_PAYS_TOKENS) == (
        False, "compile auto: off (it was measured to pay on CUDA only)")
    assert not decide_compile(TrainConfig(lora_alpha=32, method="dpo"), gpu, 10 * COMPILE_PAYS_TOKENS)[0]
    ddp = Hardware(cuda=True, gpu_name="H100", gpu_count=2, bitsandbytes=True, world_size=2, local_rank=0)
    assert not decide_compile(config, ddp, 10 * COMPILE_PAYS_TOKENS)[0]
    assert decide_compile(TrainConfig(lora_alpha=32, compile="on"), cpu, 1) == (True, "compile: on (set in the config)")
    rows = [{"input_ids": [0] * 300}, {"input_ids": [0] * 100}]
    assert tokens_to_train(TrainConfig(lora_alpha=32, epochs=2), rows) == 800
    assert tokens_to_train(TrainConfig(lora_alpha=32, max_steps=10, batch_size=16), rows) == 10 * 16 * 200


def test_kernels_auto_stays_off_until_measured_and_liger_says_why_it_cannot_run():
    from pipeline.train.hardware import Hardware
    from pipeline.train.model import decide_kernels, plan

    gpu = Hardware(cuda=True, gpu_name="H100", gpu_count=1, bitsandbytes=True, world_size=1, local_rank=0,
                   liger=True)
    bare_gpu = Hardware(cuda=True, gpu_name="H100", gpu_count=1, bitsandbytes=True, world_size=1, local_rank=0)
    cpu = Hardware(cuda=False, gpu_name=None, gpu_count=0, bitsandbytes=False, world_size=1, local_rank=0,
                   liger=True)
    config = TrainConfig(lora_alpha=32)
    assert decide_kernels(config, gpu)[0] == "none"  # not measured yet: auto stays off, with the reason
    assert "not yet measured" in decide_kernels(config, gpu)[1]
    assert decide_kernels(TrainConfig(lora_alpha=32, kernels="liger"), gpu) == (
        "liger", "kernels liger (fused RMSNorm, SwiGLU, RoPE)")
    assert decide_kernels(config, bare_gpu) == (
        "none", "kernels auto: none (liger-kernel is not installed: pip install liger-kernel)")
    assert decide_kernels(config, cpu) == ("none", "kernels auto: none (no CUDA)")
    assert decide_kernels(TrainConfig(lora_alpha=32, method="dpo"), gpu)[0] == "none"
    assert decide_kernels(TrainConfig(lora_alpha=32, kernels="none"), gpu) == ("none", "kernels none (set in the config)")
    with pytest.raises(ConfigError, match=r"kernels: liger cannot run here \(liger-kernel is not installed"):
        decide_kernels(TrainConfig(lora_alpha=32, kernels="liger"), bare_gpu)
    assert plan(config, cpu).kernels == "none" and "kernels auto: none (no CUDA)" in plan(config, cpu).note
    base = ["lora_alpha=32"]
    with pytest.raises(ConfigError, match="kernels: 'fast' is not one of auto, liger, none"):
        load_config(None, [*base, "kernels=fast"])
    with pytest.raises(ConfigError, match="kernels: liger is for method sft"):
        load_config(None, [*base, "method=dpo", "kernels=liger"])
