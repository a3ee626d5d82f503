"""The prompt layout of a model: how a (prompt, target) pair becomes token ids, for training, evaluation and
the label scorer alike (one definition, chosen from the tokenizer and the model folder).

Mistral-family bases (model_type "mistral", an `[INST]` token, or a chat template written in `[INST]`) keep
the paper's layout, exports.formats.inst_text: `<s>[INST] {prompt} [/INST] {target} </s>`, encoded without
the tokenizer's own BOS (the text carries it), exactly one BOS. Every other model uses its own chat template:
the prompt is the user turn rendered with the generation prompt, the target's tokens follow, then the
template's end-of-turn. Where the answer starts and what ends the turn are read from the template by
rendering a sentinel answer, never hard-coded. Prompt, target and end-of-turn are tokenized apart and
joined, so the prompt's tokens are always a prefix of the full row's, as they are when the model generates.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db.errors import NlistralError
from exports import formats

MISTRAL = "mistral-inst"
CHAT = "chat-template"
_SENTINEL = "NLISTRALANSWER7F3A"


class LayoutError(NlistralError, ValueError):
    """The model has no usable prompt layout, or a prompt encodes badly under it (the message says why)."""


@dataclass(frozen=True)
class Layout:
    """How one tokenizer's model is prompted and trained: the prompt text, the answer and end-of-turn tokens."""

    tokenizer: Any
    kind: str  # MISTRAL | CHAT
    answer_prefix: str  # text between the prompt and the target (" " in the [INST] layout)
    end_of_turn: str  # text after the target (" </s>" in the [INST] layout)
    stop_ids: tuple[int, ...]  # tokens that end an answer when generated

    def prompt_text(self, prompt: str) -> str:
        """The text the model sees up to where its answer starts."""
        if self.kind == MISTRAL:
            return formats.inst_prompt(prompt)
        return _render(self.tokenizer, [{"role": "user", "content": prompt}], generation_prompt=True)

    def prompt_ids(self, prompts: Sequence[str], forced: Sequence[str] | None = None, *,
                   check: bool = True) -> list[list[int]]:
        """Token ids of each prompt, optionally followed by answer text already written (`forced`).

        check=False leaves the BOS check to the caller (training checks whole rows and names their line).
        """
        tails = list(forced) if forced is not None else [""] * len(prompts)
        texts = [self.prompt_text(p) for p in prompts]
        if self.kind == MISTRAL:  # as today: one text, its own "<s>" the only BOS
            ids = _encode(self.tokenizer, [t + f for t, f in zip(texts, tails)])
        else:
            heads = _encode(self.tokenizer, texts)
            more = _encode(self.tokenizer, tails) if any(tails) else [[] for _ in tails]
            ids = [h + m for h, m in zip(heads, more)]
        for text, row in zip(texts, ids) if check else ():
            self.check(row, row, f"prompt {text[:40]!r}...")
        return ids

    def full_ids(self, prompts: Sequence[str], targets: Sequence[str]) -> list[list[int]]:
        """Token ids of each whole training row: prompt, target, end-of-turn."""
        if self.kind == MISTRAL:
            return _encode(self.tokenizer, [formats.inst_text(p, t) for p, t in zip(prompts, targets)])
        heads = _encode(self.tokenizer, [self.prompt_text(p) for p in prompts])
        answers = _encode(self.tokenizer, [self.answer_prefix + t for t in targets])
        end = _encode(self.tokenizer, [self.end_of_turn])[0]
        return [h + a + end for h, a in zip(heads, answers)]

    def check(self, head: list[int], full: list[int], where: str) -> None:
        """Raise LayoutError unless full starts with head and holds the BOS the layout expects."""
        tok = self.tokenizer
        bos = tok.bos_token_id
        if self.kind == MISTRAL and (not full or full[0] != bos or full.count(bos) != 1):
            raise LayoutError(f"{where}: the tokenized example must start with exactly one BOS ({tok.bos_token}); "
                              f"found {full.count(bos)} (does the text contain a literal {tok.bos_token}?)")
        if self.kind == CHAT and bos is not None and full[:2] == [bos, bos]:
            raise LayoutError(f"{where}: the tokenized example starts with two BOS ({tok.bos_token})")
        if full[:len(head)] != head:
            raise LayoutError(f"{where}: tokenizing prompt and target together changed the prompt's tokens, so the "
                              "loss mask would be wrong; check the tokenizer (the prompt must end at [/INST])")

    def forced_prefix(self, target_start: str) -> str:
        """Answer text as it follows the prompt: the start of a target, after the layout's answer prefix."""
        return self.answer_prefix + target_start

    def signature(self) -> str:
        """What identifies the layout in a prompt version: empty for the paper's [INST] layout."""
        if self.kind == MISTRAL:
            return ""
        return json.dumps({"prompt": self.prompt_text("{prompt}"), "answer_prefix": self.answer_prefix,
                           "end_of_turn": self.end_of_turn})


def layout_for(tokenizer: Any, model_dir: str | Path | None = None) -> Layout:
    """The layout of the model in model_dir (default: the tokenizer's folder) read through this tokenizer."""
    folder = Path(str(model_dir if model_dir is not None else getattr(tokenizer, "name_or_path", "")))
    if is_mistral_family(tokenizer, model_type(folder)):
        return Layout(tokenizer, MISTRAL, " ", " " + str(tokenizer.eos_token), (tokenizer.eos_token_id,))
    if not isinstance(_template(tokenizer), str):
        raise LayoutError(f"{folder}: the tokenizer has no chat template and the model is not Mistral-family, so "
                          "there is no prompt layout for it; use an instruct/chat model folder (its "
                          "tokenizer_config.json or chat_template.jinja holds a chat_template) or add one there")
    user = [{"role": "user", "content": "{prompt}"}]
    prompt = _render(tokenizer, user, generation_prompt=True)
    whole = _render(tokenizer, [*user, {"role": "assistant", "content": _SENTINEL}], generation_prompt=False)
    at = whole.find(_SENTINEL)
    if at < 0 or not whole[:at].startswith(prompt):
        raise LayoutError(f"{folder}: the chat template's generation prompt is not where a rendered answer starts, "
                          "so training and generation would disagree; use a model whose template renders the "
                          "assistant turn after its generation prompt")
    tail = whole[at + len(_SENTINEL):]
    end = tail.rstrip() if tail.strip() else str(tokenizer.eos_token)
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    stops = [i for i in _encode(tokenizer, [end])[0] if i in special]
    if tokenizer.eos_token_id is not None:
        stops.append(tokenizer.eos_token_id)
    return Layout(tokenizer, CHAT, whole[len(prompt):at], end, tuple(dict.fromkeys(stops)))


def is_mistral_family(tokenizer: Any, kind: str | None) -> bool:
    """Whether the paper's [INST] layout applies: a Mistral model, an [INST] token, or an [INST] chat template."""
    if kind == "mistral":
        return True
    if any(t.content == "[INST]" for t in tokenizer.added_tokens_decoder.values()):
        return True
    template = _template(tokenizer)
    return isinstance(template, str) and "[INST]" in template


def model_type(folder: Path) -> str | None:
    """The model_type in folder/config.json, or in its base's when folder is a LoRA adapter; None if unknown."""
    for _ in range(2):
        config, adapter = folder / "config.json", folder / "adapter_config.json"
        try:
            if config.is_file():
                kind = json.loads(config.read_text(encoding="utf-8")).get("model_type")
                return kind if isinstance(kind, str) else None
            if not adapter.is_file():
                return None
            folder = Path(json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path") or "")
        except (OSError, json.JSONDecodeError):
            return None
    return None


def _template(tokenizer: Any) -> Any:
    template = getattr(tokenizer, "chat_template", None)
    return template.get("default") if isinstance(template, dict) else template


def _render(tokenizer: Any, turns: list[dict[str, str]], *, generation_prompt: bool) -> str:
    text: str = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=generation_prompt)
    return text


def _encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids without the tokenizer's own special tokens: the layout's text carries what it needs."""
    if not texts:
        return []
    ids: list[list[int]] = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return ids
