"""A scripted stand-in for a causal LM: answers each prompt with a fixed text, through the real decoding loop.

It keeps every row's tokens in the real cache of the decoding loop (as its "keys") and reads the real
positions from the loop's 4-D masks, so batching, left padding, prefill chunks, cache compaction and
stopping are exercised exactly as with a real model.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from pipeline.evaluate.loading import LoadedModel
from pipeline.evaluate.prompts import split_user_prompt


class ScriptedModel(torch.nn.Module):
    """Writes answers[premise] after each prompt (then EOS); unknown premises get `default`."""

    def __init__(self, tokenizer: Any, answers: dict[str, str], *, default: str = "no idea",
                 interrupt_at_prefill: int | None = None) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device and a dtype
        self.config = SimpleNamespace(num_hidden_layers=1, num_key_value_heads=1, num_attention_heads=1,
                                      head_dim=1, hidden_size=1)
        self.tokenizer = tokenizer
        self.answers = {p: tokenizer(a, add_special_tokens=False)["input_ids"] for p, a in answers.items()}
        self.default = tokenizer(default, add_special_tokens=False)["input_ids"]
        self.interrupt_at_prefill = interrupt_at_prefill
        self.prefills = 0
        self.prompts_seen: list[str] = []
        self.steps = 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, past_key_values: Any,
                **_: Any) -> SimpleNamespace:
        """Next-token logits that pick the scripted token for every row."""
        first = past_key_values.get_seq_length() == 0
        if first:
            self.prefills += 1
            if self.interrupt_at_prefill is not None and self.prefills >= self.interrupt_at_prefill:
                raise KeyboardInterrupt("scripted interruption")
            self.steps = 0
        else:
            self.steps += 1  # tokens generated so far, the one being fed included
        states = input_ids[:, None, :, None].float()
        history, _ = past_key_values.update(states, states, 0)
        tokens = history[:, 0, :, 0].long()
        visible = attention_mask[:, 0, -1, :]  # the 4-D mask's last query row: the real positions
        logits = torch.full((input_ids.shape[0], 1, len(self.tokenizer)), -1e4)
        for row in range(input_ids.shape[0]):
            real = tokens[row][visible[row]].tolist()
            prompt = self.tokenizer.decode(real[:len(real) - self.steps])
            if first:
                self.prompts_seen.append(prompt)
            pair = split_user_prompt(prompt)
            answer = self.answers.get(pair[0], self.default) if pair else self.default
            logits[row, 0, answer[self.steps] if self.steps < len(answer) else self.tokenizer.eos_token_id] = 0.0
        return SimpleNamespace(logits=logits)


def scripted_loader(model: ScriptedModel) -> Any:
    """A loader for run_evaluation that hands back the scripted model."""

    def load(adapter: Path | None, base: str | None, **_: Any) -> LoadedModel:
        return LoadedModel(model, model.tokenizer, str(adapter or base), str(base), None, "scripted")

    return load
