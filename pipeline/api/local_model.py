"""An open-weights chat model run in this process (--backend local --model DIR): load, prompt, decode a batch.

The prompt is the model's OWN chat template (the tokenizer's), not the training/evaluation layout: a
generation run asks the model as its makers meant it to be asked. A template that refuses a system
turn (or silently drops it) gets the system text folded into the user turn; which of the two applies
is decided once, when the tokenizer is loaded. Decoding is evaluate's engine (pipeline/evaluate/generation.py:
a reserved key/value cache, left padding, finished rows leaving the batch): greedy at temperature 0, else
sampled at the request's temperature, up to max_tokens, stopping at the end of the model's turn (not at
the first closed JSON object, as evaluate does: an API answer is the whole turn).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.api.endpoint import ClientConfigError

Messages = list[dict[str, str]]
# Tokens that end a turn in common chat templates (ChatML, Llama 3, Phi, Gemma, Mistral); each is a stop
# token only where the tokenizer has it as a special token.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>")
SYSTEM_PROBE = "nlistral system probe 7d1f"


def has_chat_template(path: Path) -> bool:
    """Whether the folder's tokenizer carries a chat template (chat_template.jinja/.json or tokenizer_config.json)."""
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(isinstance(config, dict) and config.get("chat_template"))


def no_template_message(folder: str) -> str:
    """What to do about a model folder whose tokenizer has no chat template."""
    return (f"the tokenizer in {folder} has no chat template, so --backend local cannot build its prompts. Use an "
            "instruct/chat model folder, or add the template of the model it was fine-tuned from "
            "(chat_template.jinja beside tokenizer_config.json).")


def check_model_dir(folder: str) -> Path:
    """The folder as a Path; ClientConfigError unless it holds a model (config.json) whose tokenizer has a chat
    template."""
    path = Path(folder).expanduser()
    if not (path / "config.json").is_file():
        raise ClientConfigError(
            f"--backend local runs --model DIR, a Hugging Face model folder (config.json, weights, tokenizer), in "
            f"this process; {folder!r} {'has no config.json' if path.is_dir() else 'is not a folder'}. Pass the "
            "folder with --model (e.g. one made by `nlistral models fetch smollm2 DIR`).")
    if not has_chat_template(path):
        raise ClientConfigError(no_template_message(folder))
    return path


def fold_system(messages: Messages) -> Messages:
    """The messages without system turns: their text leads the first user turn."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system:
        first_user = next((m for m in rest if m["role"] == "user"), None)
        if first_user is None:
            rest.insert(0, {"role": "user", "content": system})
        else:
            first_user["content"] = f"{system}\n\n{first_user['content']}"
    return rest


@dataclass(frozen=True)
class Answer:
    """One decoded answer: its text, the prompt and answer tokens, and why decoding stopped."""

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str  # "stop" (end of turn) or "length" (max_tokens reached)


class LocalModel:
    """A Hugging Face folder loaded once: `prompt` renders messages in its chat template, `generate` answers a batch."""

    def __init__(self, folder: str, *, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = check_model_dir(folder)
        self.folder = folder
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ClientConfigError(no_template_message(folder))
        self.tokenizer.padding_side = "left"  # every answer starts at the same column
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        self.model = model.to(self.device).eval()
        self.fold_system = not self._template_takes_system()
        self.stop_ids = stop_token_ids(self.tokenizer, self.model)
        self.batch_sizes: list[int] = []  # rows of each generate call, in order

    def _template_takes_system(self) -> bool:
        """Whether the template renders a system turn (some raise on one, some drop it)."""
        probe = [{"role": "system", "content": SYSTEM_PROBE}, {"role": "user", "content": "hello"}]
        try:
            text = self.tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - jinja TemplateError, or whatever the template raises
            return False
        return SYSTEM_PROBE in str(text)

    def prompt(self, messages: Messages) -> str:
        """The prompt text for these messages in the model's chat template, ending where the answer starts."""
        turns = fold_system(messages) if self.fold_system else messages
        return str(self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))

    def generate(self, prompts: list[str], max_tokens: int, temperature: float) -> list[Answer]:
        """Answers to prompt texts decoded as one batch (greedy at temperature 0, else sampled)."""
        from pipeline.evaluate.generation import STOP_EOS, generate

        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        answers: list[Answer | None] = [None] * len(prompts)
        for batch in generate(self.model, self.tokenizer, ids, max_new_tokens=max_tokens, batch_size=len(prompts),
                              stop_at_json_end=False, stop_ids=self.stop_ids, temperature=temperature):
            for index, out in zip(batch.indices, batch.outputs):
                stopped = out.stop == STOP_EOS
                text = str(self.tokenizer.decode(list(out.token_ids), skip_special_tokens=True))
                answers[index] = Answer(text, out.prompt_tokens, len(out.token_ids) + stopped,
                                        "stop" if stopped else "length")
        self.batch_sizes.append(len(prompts))
        return [a for a in answers if a is not None]


def stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    """The token ids that end the model's turn: EOS, the generation config's EOS ids, and known end-of-turn tokens."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(int(i) for i in ([configured] if isinstance(configured, int) else configured or []))
    special = set(getattr(tokenizer, "all_special_tokens", [])) | set(tokenizer.get_added_vocab())
    ids.update(int(tokenizer.convert_tokens_to_ids(t)) for t in END_OF_TURN if t in special)
    return sorted(ids)
