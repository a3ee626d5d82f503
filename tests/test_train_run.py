"""Training end to end on a tiny random Mistral on CPU: SFT, label-only, DPO losses, resume, cancel, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from db import open_db
from db.runs import get_run, list_runs
from exports.formats import cot_target, inst_text, user_prompt
from exports.sink import export_sha256
from pipeline.train.config import load_config
from pipeline.train.runner import TrainingCancelled, checkpoints_in, run_training

pytestmark = pytest.mark.slow

WORDS = ["cat", "dog", "man", "child", "sings", "runs", "reads", "sleeps", "park", "home"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Two cores are shared by the whole suite: one intra-op thread is faster for a tiny model."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    sft, dpo = [], []
    for i in range(16):
        premise = f"A {WORDS[i % 4]} {WORDS[4 + i % 4]} in the {WORDS[8 + i % 2]}."
        hypothesis = f"A {WORDS[i % 4]} {WORDS[4 + (i + i // 4) % 4]}."
        label = int(i // 4 % 4 == 0)
        prompt = user_prompt(premise, hypothesis)
        sft.append({"id": i, "text": inst_text(prompt, cot_target(f"Step 1: compare verbs {i}.", label))})
        dpo.append({"id": i, "prompt": prompt, "chosen": cot_target("Step 1: same verb.", label),
                    "rejected": cot_target("Step 1: guess.", 1 - label), "provenance": {"i": i}})
    paths = {"sft": folder / "sft.jsonl", "dpo": folder / "dpo.jsonl"}
    for name, rows in (("sft", sft), ("dpo", dpo)):
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return paths


def _config(model_dir: Path, out: Path, data: Path, *sets: str):
    base = [f"base_model={model_dir}", f"data={data}", f"output_dir={out}", "lora_r=8", "lora_alpha=16",
            "batch_size=4", "micro_batch_size=2", "max_steps=4", "warmup_steps=1", "logging_steps=1",
            "save_steps=2", "eval_steps=2", "eval_fraction=0.25", "gradient_checkpointing=none"]
    return load_config(None, base + list(sets))


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_sft_run_is_recorded_logged_and_leaves_a_lora_only_adapter(tiny_model_dir, exports, tmp_path, db_path):
    config = _config(tiny_model_dir, tmp_path / "sft", exports["sft"])
    result = run_training(config, db_path=db_path)
    assert result.status == "completed", result.error

    store = open_db(db_path)
    run = get_run(store, result.run_id)
    assert run.kind == "train" and run.status == "completed"
    assert run.config["export"]["sha256"] == export_sha256(exports["sft"]) == run.metrics["export_sha256"]
    metrics = run.metrics
    assert metrics["global_step"] == 4 and metrics["train_examples"] == 12 and metrics["eval_examples"] == 4
    assert metrics["tokens_per_s"] > 0 and metrics["eval_loss"] > 0 and 0 < metrics["adapter_mb"] < 1
    assert Path(run.artifacts["adapter"]) == result.adapter_dir
    assert list((tmp_path / "sft" / "tensorboard").glob("events.out.tfevents.*"))
    assert load_config(tmp_path / "sft" / "config.yaml") == config

    events = _events(result.log_path)
    assert events[0]["event"] == "start" and events[0]["run_id"] == result.run_id
    assert events[-1]["event"] == "end" and events[-1]["status"] == "completed"
    logs = [e for e in events if e["event"] == "log"]
    assert [e["step"] for e in logs] == [1, 2, 3, 4]
    assert all({"loss", "learning_rate", "epoch", "tokens_per_s"} <= set(e) for e in logs)
    assert [e["step"] for e in events if e["event"] == "eval"] == [2, 4]
    assert any(e["event"] == "plan" and "CPU: plain LoRA" in e["note"] for e in events)

    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    with safe_open(str(result.adapter_dir / "adapter_model.safetensors"), framework="pt") as fh:
        keys = list(fh.keys())
    assert keys and all("lora_A" in k or "lora_B" in k for k in keys)
    assert not any("embed" in k or "lm_head" in k for k in keys)
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = base(input_ids=ids).logits
    tuned = PeftModel.from_pretrained(base, result.adapter_dir).eval()
    assert tuned.peft_config["default"].r == 8 and tuned.peft_config["default"].lora_alpha == 16
    after = tuned(input_ids=ids).logits
    assert not torch.equal(before, after)  # the trained adapter changes the model
    from transformers import AutoTokenizer

    assert tuned.get_input_embeddings().weight.shape[0] == len(AutoTokenizer.from_pretrained(tiny_model_dir))


def test_label_only_trains_on_the_label_alone(tiny_model_dir, exports, tmp_path, db_path):
    config = _config(tiny_model_dir, tmp_path / "label", exports["sft"], "method=label-only", "max_steps=2")
    result = run_training(config, db_path=db_path)
    assert result.status == "completed", result.error
    sft_like = _config(tiny_model_dir, tmp_path / "cot", exports["sft"], "max_steps=2")
    cot = run_training(sft_like, db_path=db_path)
    # Same examples and prompts' pairs, but the label-only targets (and instruction) are shorter.
    assert result.metrics["tokens"] < cot.metrics["tokens"]
    assert get_run(open_db(db_path), result.run_id).config["method"] == "label-only"


@pytest.mark.parametrize("loss", ["dpo", "cal-dpo", "dr-dpo"])
def test_dpo_losses_train_with_the_beta_warmup(tiny_model_dir, exports, tmp_path, db_path, loss):
    config = _config(tiny_model_dir, tmp_path / loss, exports["dpo"], "method=dpo", f"loss={loss}",
                     "beta=0.2", "beta_start=0.02", "beta_warmup_steps=3", "drop_disagreeing_fraction=0.25",
                     "early_stopping_patience=0", "eval_fraction=0")
    result = run_training(config, db_path=db_path)
    assert result.status == "completed", result.error
    assert result.metrics["dropped_disagreeing"] == 4 and result.metrics["train_examples"] == 16
    logs = [e for e in _events(result.log_path) if e["event"] == "log"]
    betas = [e["beta"] for e in logs]
    assert betas[0] == pytest.approx(0.02) and betas[-1] == pytest.approx(0.2) and betas == sorted(betas)
    assert all("rewards/margins" in e for e in logs)
    assert logs[0]["tokens_per_s"] is None and all(e["tokens_per_s"] > 0 for e in logs[1:])  # step 1: no interval yet


def test_resume_continues_step_optimizer_and_data_order(tiny_model_dir, exports, tmp_path, db_path):
    extra = ("early_stopping_patience=0", "eval_fraction=0")
    straight = run_training(_config(tiny_model_dir, tmp_path / "a", exports["sft"], *extra), db_path=db_path)

    from transformers import TrainerCallback

    class StopAfterTwo(TrainerCallback):
        """Raise as the TUI's SIGTERM would, once checkpoint-2 is on disk."""

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise TrainingCancelled()

    broken = _config(tiny_model_dir, tmp_path / "b", exports["sft"], *extra)
    first = run_training(broken, db_path=db_path, callbacks=(StopAfterTwo(),))
    assert first.status == "cancelled" and first.adapter_dir is None
    assert [p.name for p in checkpoints_in(tmp_path / "b")] == ["checkpoint-2"]
    assert get_run(open_db(db_path), first.run_id).status == "cancelled"

    again = run_training(_config(tiny_model_dir, tmp_path / "b", exports["sft"], *extra), db_path=db_path, resume=True)
    assert again.status == "completed", again.error
    assert again.metrics["global_step"] == 4
    events = _events(again.log_path)
    resumed_at = max(i for i, e in enumerate(events) if e["event"] == "start")
    assert [e["step"] for e in events[resumed_at:] if e["event"] == "log"] == [3, 4]

    from safetensors.torch import load_file

    a = load_file(str(straight.adapter_dir / "adapter_model.safetensors"))
    b = load_file(str(again.adapter_dir / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:  # same weights only if the optimizer moments, scheduler, RNG and data order all resumed
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    start_only = load_file(str(tmp_path / "b" / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors"))
    assert any(not torch.allclose(start_only[k], b[k]) for k in b)


def test_a_run_that_fails_is_recorded_with_its_reason(tiny_model_dir, exports, tmp_path, db_path):
    config = _config(tiny_model_dir, tmp_path / "bad", exports["dpo"])  # a DPO export for SFT
    result = run_training(config, db_path=db_path)
    assert result.status == "failed" and "this is a DPO export" in result.error
    run = list_runs(open_db(db_path), "train")[0]
    assert run.status == "failed" and "use method: dpo" in run.error
    assert _events(result.log_path)[-1]["status"] == "failed"


def test_cli_smoke_preset_runs_without_any_hub_and_refuses_to_overwrite(exports, tmp_path, db_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    out = tmp_path / "smoke"
    args = ["train", "--config", "smoke", "--set", f"data={exports['sft']}", "--set", f"output_dir={out}",
            "--set", "max_steps=2", "--set", "eval_steps=2", "--set", "save_steps=2", "--db", str(db_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "run 1: logging to" in result.output and "CPU: plain LoRA" in result.output
    assert "completed: adapter in" in result.output and (out / "base_model" / "config.json").exists()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "already holds a run" in again.output and "--resume" in again.output
    bad = CliRunner().invoke(app, ["train", "--config", "smoke", "--set", "lora_rnk=4", "--db", str(db_path)])
    assert bad.exit_code == 2 and "unknown key 'lora_rnk'" in bad.output


def _two_examples():
    torch.manual_seed(0)
    return torch.randint(5, 400, (7,)), torch.randint(5, 400, (5,))


@pytest.mark.parametrize("attn", ["sdpa", "varlen"])
def test_packed_examples_do_not_attend_to_each_other(tiny_model_dir, attn):
    from transformers import AutoModelForCausalLM

    from pipeline.train import attention

    name = attention.register() if attn == "varlen" else attn
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=name).eval()
    a, b = _two_examples()
    alone = [model(input_ids=x[None], use_cache=False).logits[0] for x in (a, b)]
    packed_ids = torch.cat([a, b])[None]
    boundaries = {"position_ids": torch.cat([torch.arange(7), torch.arange(5)])[None],
                  "cu_seq_lens_q": torch.tensor([0, 7, 12], dtype=torch.int32),
                  "cu_seq_lens_k": torch.tensor([0, 7, 12], dtype=torch.int32), "max_length_q": 7, "max_length_k": 7}
    # Training runs without a KV cache (TRL passes use_cache=False); only then are packed rows detected.
    packed = model(input_ids=packed_ids, use_cache=False, **boundaries).logits[0]
    assert torch.allclose(packed[:7], alone[0], atol=1e-5) and torch.allclose(packed[7:], alone[1], atol=1e-5)
    leaky = model(input_ids=packed_ids, use_cache=False).logits[0]  # no boundaries: b attends to a
    assert not torch.allclose(leaky[7:], alone[1], atol=1e-3)


def test_gradient_checkpointing_with_packing_changes_nothing(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    a, b = _two_examples()
    ids = torch.cat([a, b])[None]
    batch = {"input_ids": ids, "labels": ids, "position_ids": torch.cat([torch.arange(7), torch.arange(5)])[None]}
    results = []
    for checkpointing in (False, True):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        results.append((loss.item(), model.model.layers[0].self_attn.q_proj.weight.grad.clone()))
    assert results[0][0] == pytest.approx(results[1][0], abs=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


def test_compiled_layers_train_like_eager_ones(tiny_model_dir, exports, tmp_path):
    sets = ("max_steps=2", "eval_fraction=0", "early_stopping_patience=0")
    eager = run_training(_config(tiny_model_dir, tmp_path / "eager", exports["sft"], *sets), db_path=None)
    compiled = run_training(_config(tiny_model_dir, tmp_path / "compiled", exports["sft"], *sets, "compile=true"),
                            db_path=None)
    assert eager.status == compiled.status == "completed", compiled.error
    losses = [[e["loss"] for e in _events(r.log_path) if e["event"] == "log"] for r in (eager, compiled)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-3)


def test_sigterm_stops_at_a_step_with_a_checkpoint_and_records_cancelled(tiny_model_dir, exports, tmp_path, db_path):
    """What the TUI's cancel does: SIGTERM to `nlistral train`, then --resume continues."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "term"
    args = [sys.executable, "-c", "from pipeline.cli import main; main()", "train", "--config", "smoke",
            "--set", f"data={exports['sft']}", "--set", f"output_dir={out}", "--set", f"base_model={tiny_model_dir}",
            "--set", "max_steps=400", "--set", "save_steps=100", "--set", "eval_steps=100", "--db", str(db_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    log = out / "train_log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and '"event": "log"' in log.read_text()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "cancelled; continue it with --resume" in output
    events = _events(log)
    assert events[-1]["status"] == "cancelled" and events[-1]["adapter"] is None
    stopped_at = max(e["step"] for e in events if e["event"] == "log")
    assert 0 < stopped_at < 400 and checkpoints_in(out)[-1].name == f"checkpoint-{stopped_at}"
    assert get_run(open_db(db_path), events[0]["run_id"]).status == "cancelled"


def test_two_process_launch_records_one_run(exports, tmp_path, db_path):
    """DDP as `accelerate launch`/torchrun starts it (gloo on CPU): one run row, one log, one adapter."""
    import os
    import socket
    import subprocess
    import sys

    script = tmp_path / "nlistral_main.py"
    script.write_text("from pipeline.cli import main\nmain()\n", encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "ddp"
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
            str(script), "train", "--config", "smoke", "--set", f"data={exports['sft']}", "--set", f"output_dir={out}",
            "--set", "max_steps=2", "--set", "eval_steps=2", "--set", "save_steps=2", "--db", str(db_path)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("completed: adapter in") == 1  # only the main process reports
    assert done.stdout.count("Hardware:") == done.stdout.count("Data:") == 1
    assert "destroy_process_group() was not called" not in done.stderr  # torch says it under NCCL only
    runs = list_runs(open_db(db_path), "train")
    assert [r.status for r in runs] == ["completed"] and "2 process(es)" in runs[0].config["hardware"]
    events = _events(out / "train_log.jsonl")
    assert sum(e["event"] == "start" for e in events) == 1 and events[-1]["status"] == "completed"
    assert events[-1]["metrics"]["global_step"] == 2 and (out / "adapter" / "adapter_model.safetensors").exists()


def test_a_run_leaves_the_process_group_it_joined(monkeypatch):
    """Under gloo torch says nothing when a process exits in a group, so check the leaving itself."""
    import socket

    import torch.distributed as dist

    from pipeline.train.runner import _leave_process_group

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    dist.init_process_group("gloo", rank=0, world_size=1)
    assert dist.is_initialized()
    _leave_process_group()
    assert not dist.is_initialized()
    _leave_process_group()  # and outside a group it does nothing
