"""`--backend local --model DIR`: a model folder run in this process, through the same send loop, parser and store.

The fast tests use a stand-in model (batching, errors, options) or the tiny random Mistral; the slow ones run the
real SmolLM2-135M-Instruct on CPU with answers of a few tokens (it rarely writes valid JSON in so few: a reply
that does not parse is stored as a parse failure, never a guessed label).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fake_mistral import toy_db, toy_pairs
from kill import sigkill_when, stored_count
from typer.testing import CliRunner

from pipeline.api.endpoint import ClientConfigError
from pipeline.api.local_client import LocalChat
from pipeline.api.local_model import Answer, LocalModel, fold_system
from pipeline.api.retry import ApiError
from pipeline.cli import app
from pipeline.generate import stage_options
from pipeline.prompts import PROMPTS, THOUGHT
from pipeline.settings import Api, Settings

runner = CliRunner()
SHORT = dataclasses.replace(THOUGHT, max_tokens=6, temperature=0.0)  # a few greedy tokens: CPU-cheap


pytestmark = pytest.mark.usefixtures("keyless_env")


@pytest.fixture
def short_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thought prompt with max_tokens 6 at temperature 0 (its own prompt version)."""
    monkeypatch.setitem(PROMPTS, "thought", SHORT)


class StandIn:
    """A model with LocalModel's prompt() and generate(), recording each batch."""

    device = "cpu"

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    def prompt(self, messages: list[dict[str, str]]) -> str:
        return "|".join(m["content"] for m in messages)

    def generate(self, prompts: list[str], max_tokens: int, temperature: float) -> list[Answer]:
        if self.fail:
            raise RuntimeError("CUDA out of memory")
        self.batches.append(prompts)
        return [Answer(f'{{"thought_process": "x", "predicted_label": {len(p) % 2}}}', len(p), 5, "stop")
                for p in prompts]


def gather(chat: LocalChat, texts: list[str]) -> list[object]:
    """Send every text at once, as the send loop's workers do."""
    async def main() -> list[object]:
        async with chat:
            return await asyncio.gather(*(chat.complete([{"role": "user", "content": t}], model="m", max_tokens=4,
                                                        temperature=0.0) for t in texts), return_exceptions=True)
    return asyncio.run(main())


def test_concurrent_requests_decode_in_batches_longest_first() -> None:
    model = StandIn()
    replies = gather(LocalChat("dir", max_batch=3, load=lambda _: model), ["a" * n for n in (1, 5, 3, 2, 4, 6)])
    assert [len(b) for b in model.batches] == [3, 3]
    assert [len(p) for p in model.batches[0]] == [6, 5, 4]
    assert all(r.server == "in-process (cpu)" and r.tokens_out == 5 and r.attempts == 1 for r in replies)  # type: ignore[attr-defined]


def test_a_failed_batch_fails_its_requests_as_api_errors() -> None:
    replies = gather(LocalChat("dir", max_batch=2, load=lambda _: StandIn(fail=True)), ["a", "b"])
    assert all(isinstance(r, ApiError) and r.kind == "local_model" and "out of memory" in str(r) for r in replies)


def test_fold_system_leads_the_first_user_turn() -> None:
    folded = fold_system([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert folded == [{"role": "user", "content": "S\n\nU"}]


def test_options_need_a_model_folder(tmp_path: Path) -> None:
    local = Settings(api=Api(backend="local"))
    with pytest.raises(ClientConfigError, match="ministral-8b-latest.*is not a folder"):
        stage_options("thought", local)
    with pytest.raises(ClientConfigError, match="--server-url is for --backend mistral or openai"):
        stage_options("thought", local, model=str(tmp_path), server_url="http://localhost:8000")


def test_dry_run_sends_nothing_and_costs_zero(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    db = toy_db(tmp_path / "s.db", toy_pairs(3))
    result = runner.invoke(app, ["generate", "--db", str(db), "--backend", "local", "--model", str(folder),
                                 "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    estimate = json.loads(result.stdout)
    assert estimate["requests"] == 3 and estimate["cost_usd_estimate"] == 0.0 and "in this process" in estimate["cost_note"]


def test_send_loop_stores_local_answers_with_a_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = StandIn()
    monkeypatch.setattr("pipeline.api.local_client.LocalModel", lambda _folder: model)
    monkeypatch.setattr("pipeline.api.local_model.check_model_dir", lambda folder: Path(folder))
    db = toy_db(tmp_path / "s.db", toy_pairs(4))
    args = ["generate", "--db", str(db), "--backend", "local", "--model", "my-model", "--max-concurrency", "4", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert [len(b) for b in model.batches] == [4]
    rows = sqlite3.connect(db).execute("SELECT backend, model, cost_usd, json_extract(params, '$.endpoint') "
                                       "FROM generations").fetchall()
    assert rows == [("local", "my-model", 0.0, "in-process (cpu)")] * 4
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and json.loads(second.stdout)["run"]["requests"] == 0
    assert len(model.batches) == 1
    for command in (["reflect"], ["reflect", "--blind"], ["judge"]):  # every stage goes through the same client
        result = runner.invoke(app, [*command, *args[1:]])
        assert result.exit_code == 0, result.output
    kinds = sqlite3.connect(db).execute("SELECT DISTINCT kind, backend FROM generations ORDER BY kind").fetchall()
    assert kinds == [("blind_reflection", "local"), ("judge", "local"), ("reflection", "local"), ("thought", "local")]


def test_tiny_mistral_works_and_a_folder_without_template_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = LocalModel(str(tiny_model_dir))
    prompt = model.prompt(THOUGHT.messages(premise="P.", hypothesis="H."))
    assert prompt.startswith("<s>") and "[INST] Premise: P." in prompt
    answers = model.generate([prompt, model.prompt([{"role": "user", "content": "hi"}])], 3, 0.0)
    assert [a.tokens_out for a in answers] and all(0 < a.tokens_out <= 3 for a in answers)
    bare = tmp_path / "bare"
    shutil.copytree(tiny_model_dir, bare)
    for name in ("chat_template.jinja", "chat_template.json"):
        (bare / name).unlink(missing_ok=True)
    config = json.loads((bare / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ClientConfigError, match=f"{bare}.*no chat template.*chat_template.jinja"):
        LocalModel(str(bare))


def test_it_decodes_with_evaluates_engine_greedy_as_generate_and_sampled_by_temperature(tiny_model_dir: Path,
                                                                                       monkeypatch) -> None:
    import torch

    from pipeline.evaluate import generation

    model = LocalModel(str(tiny_model_dir))
    prompts = [model.prompt([{"role": "user", "content": text}]) for text in ("hi", "a longer question, with words")]
    calls = []
    engine = generation.generate
    monkeypatch.setattr(generation, "generate", lambda *a, **k: calls.append(k["temperature"]) or engine(*a, **k))
    greedy = model.generate(prompts, 12, 0.0)
    assert calls == [0.0]  # the engine decoded it
    encoded = model.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        plain = model.model.generate(**encoded, max_new_tokens=12, do_sample=False, eos_token_id=model.stop_ids,
                                     pad_token_id=model.tokenizer.pad_token_id)
    expected = [model.tokenizer.decode([t for t in row if t not in model.stop_ids], skip_special_tokens=True)
                for row in plain[:, encoded["input_ids"].shape[1]:].tolist()]
    assert [a.text for a in greedy] == expected  # what plain greedy `generate` writes, token for token
    torch.manual_seed(0)
    hot = [a.text for a in model.generate(prompts * 4, 12, 5.0)]
    assert calls == [0.0, 5.0] and len(set(hot)) > 2  # sampled: the same prompt answers differently


def test_a_template_refusing_system_turns_gets_them_folded(tiny_model_dir: Path, tmp_path: Path) -> None:
    strict = tmp_path / "strict"
    shutil.copytree(tiny_model_dir, strict)
    (strict / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "[INST] {{ m['content'] }} [/INST]{% endfor %}")
    model = LocalModel(str(strict))
    assert model.fold_system
    assert model.prompt(THOUGHT.messages(premise="P.", hypothesis="H.")).startswith(f"[INST] {THOUGHT.system}\n\n")


@pytest.mark.slow
def test_smollm2_prompts_in_its_own_template_and_batches(smollm2_dir: Path) -> None:
    model = LocalModel(str(smollm2_dir))
    assert not model.fold_system
    prompt = model.prompt(THOUGHT.messages(premise="A dog runs.", hypothesis="An animal moves."))
    assert prompt.startswith(f"<|im_start|>system\n{THOUGHT.system}<|im_end|>\n<|im_start|>user\nPremise: A dog")
    assert prompt.endswith("<|im_start|>assistant\n")
    replies = gather(LocalChat(str(smollm2_dir), max_batch=3, load=lambda _: model), ["one", "two two", "three"])
    assert model.batch_sizes == [3]
    assert all(0 < r.tokens_out <= 4 and r.tokens_in > 10 for r in replies)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_smollm2_generate_stores_each_answer_once(smollm2_dir: Path, tmp_path: Path, short_prompt: None) -> None:
    db = toy_db(tmp_path / "s.db", toy_pairs(3))
    args = ["generate", "--db", str(db), "--backend", "local", "--model", str(smollm2_dir), "--max-concurrency", "3",
            "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["run"]["stored"] == 3 and summary["run"]["cost_usd_estimate"] == 0 and summary["cost_note"]
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT backend, model, prompt_version, tokens_in, tokens_out, cost_usd, parse_status, "
                        "predicted_label, latency_ms FROM generations WHERE kind = 'thought'").fetchall()
    assert len(rows) == 3
    for backend, model, version, tokens_in, tokens_out, cost, status, label, latency in rows:
        assert (backend, model, version, cost) == ("local", str(smollm2_dir), SHORT.version, 0.0)
        assert tokens_in > 50 and 0 < tokens_out <= 6 and latency > 0
        assert status in ("ok", "repaired", "failed") and (status != "failed" or label is None)
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and json.loads(second.stdout)["run"]["requests"] == 0
    assert conn.execute("SELECT count(*) FROM generations").fetchone()[0] == 3


DRIVER = ("import dataclasses, sys; from pipeline import prompts; "
          "prompts.PROMPTS['thought'] = dataclasses.replace(prompts.THOUGHT, max_tokens=4, temperature=0.0); "
          "from pipeline.cli import main; sys.argv = ['nlistral', *sys.argv[1:]]; main()")


@pytest.mark.slow
def test_smollm2_resumes_after_sigkill_without_repeating(smollm2_dir: Path, tmp_path: Path) -> None:
    n = 4
    db = toy_db(tmp_path / "k.db", toy_pairs(n))
    env = {**os.environ, "NLISTRAL_CONFIG": str(tmp_path / "none.toml")}
    argv = [sys.executable, "-c", DRIVER, "generate", "--db", str(db), "--backend", "local", "--model",
            str(smollm2_dir), "--max-concurrency", "1", "--json"]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    first = start()
    sigkill_when(first, lambda: stored_count(db, "thought") >= 1, "the first run stored nothing", timeout_s=240)
    kept = stored_count(db, "thought")
    assert 1 <= kept < n
    second = start()
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err.decode()
    run = json.loads(out)["run"]
    assert run["requests"] == n - kept and run["stored"] == n - kept  # nothing stored was asked for again
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*), count(DISTINCT example_id), count(DISTINCT dedupe_key) FROM generations "
                        "WHERE backend = 'local'").fetchone() == (n, n, n)
