"""Batched greedy decoding: left padding, length-sorted batches, new tokens only, stop at the end of the JSON.

One loop for every device. Rows that finish (their JSON object closed, or EOS) leave the batch at the
next check, so their cache stops costing time; the GPU is synchronised only at those checks, so the
host queues the next steps while the device computes.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

STOP_JSON = "json_end"
STOP_EOS = "eos"
STOP_LENGTH = "length"
_JSON_CHARS = frozenset('{}"\\')


@dataclass(frozen=True)
class Generated:
    """One answer: the new tokens only (prompt excluded), their text, and why decoding stopped."""

    token_ids: tuple[int, ...]
    text: str
    stop: str  # json_end | eos | length
    prompt_tokens: int


@dataclass(frozen=True)
class BatchResult:
    """The answers of one batch, with the positions of their prompts in the input list."""

    indices: tuple[int, ...]
    outputs: tuple[Generated, ...]
    seconds: float

    @property
    def new_tokens(self) -> int:
        return sum(len(o.token_ids) for o in self.outputs)


def json_chars(text: str) -> str:
    """The characters of text that matter for JSON nesting; every run of other characters as one 'x'."""
    reduced: list[str] = []
    for ch in text:
        if ch in _JSON_CHARS:
            reduced.append(ch)
        elif not reduced or reduced[-1] != "x":
            reduced.append("x")
    return "".join(reduced) if any(c in _JSON_CHARS for c in reduced) else ""


def json_char_table(tokenizer: Any) -> list[str]:
    """json_chars of every token's text, by token id ('' for tokens without such characters)."""
    return [json_chars(tokenizer.decode([token_id])) for token_id in range(len(tokenizer))]


class JsonEnd:
    """Follows one answer's characters and says when its first top-level JSON object has closed."""

    __slots__ = ("depth", "in_string", "escaped")

    def __init__(self) -> None:
        self.depth, self.in_string, self.escaped = 0, False, False

    def feed(self, chars: str) -> bool:
        """Feed reduced characters (see json_char_table); True once the outer object has closed."""
        for ch in chars:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"' and self.depth > 0:
                self.in_string = True
            elif ch == "{":
                self.depth += 1
            elif ch == "}" and self.depth > 0:
                self.depth -= 1
                if self.depth == 0:
                    return True
        return False


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Prompt positions grouped into batches of similar length, longest first (memory trouble shows early)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def kv_bytes_per_token(model: Any) -> int:
    """Bytes of key/value cache one token costs across all layers."""
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    return 2 * cfg.num_hidden_layers * kv_heads * head_dim * next(model.parameters()).element_size()


def auto_batch_size(model: Any, longest_prompt: int, max_new_tokens: int, *, cap: int = 1024) -> int:
    """Rows per batch: 8 on CPU; on CUDA as many as the free memory holds caches for (at most cap)."""
    import torch

    device = next(model.parameters()).device
    if device.type != "cuda":
        return 8
    free, _ = torch.cuda.mem_get_info(device)
    reserve = 12 * 2**30  # prefill activations of one chunk, logits, allocator slack
    per_row = kv_bytes_per_token(model) * (longest_prompt + max_new_tokens) * 1.1
    return max(1, min(cap, int((free - reserve) // per_row)))


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    batch_size: int | None = None,
    stop_at_json_end: bool = True,
    stop_at_eos: bool = True,
    check_every: int = 8,
    prefill_tokens: int = 32768,
    char_table: list[str] | None = None,
    forced: Sequence[str] | None = None,
) -> Iterator[BatchResult]:
    """Greedy answers to encoded prompts, one BatchResult per finished batch (length-sorted order).

    batch_size None picks one from free memory (auto_batch_size). The prompt is never part of the
    output. With stop_at_json_end a row stops at the brace that closes its first JSON object;
    `forced` is, per prompt, answer text already written at the end of the prompt (counted there).
    """
    import torch

    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1")
    if stop_at_json_end and char_table is None:
        char_table = json_char_table(tokenizer)
    lengths = [len(p) for p in prompts]
    if batch_size is None:
        batch_size = auto_batch_size(model, max(lengths, default=1), max_new_tokens)
    for batch in length_sorted_batches(lengths, batch_size):
        started = time.perf_counter()
        with torch.inference_mode():
            outputs = _generate_batch(
                model, tokenizer, [prompts[i] for i in batch], max_new_tokens=max_new_tokens,
                stop_at_json_end=stop_at_json_end, stop_at_eos=stop_at_eos, check_every=check_every,
                prefill_tokens=prefill_tokens, char_table=char_table,
                forced=[forced[i] for i in batch] if forced is not None else None,
            )
        yield BatchResult(tuple(batch), tuple(outputs), time.perf_counter() - started)


def _generate_batch(model: Any, tokenizer: Any, prompts: list[Sequence[int]], *, max_new_tokens: int,
                    stop_at_json_end: bool, stop_at_eos: bool, check_every: int, prefill_tokens: int,
                    char_table: list[str] | None, forced: list[str] | None) -> list[Generated]:
    import torch

    device = next(model.parameters()).device
    rows, longest = len(prompts), max(len(p) for p in prompts)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_id = tokenizer.eos_token_id if stop_at_eos else None
    ids = torch.full((rows, longest), pad_id, dtype=torch.long)
    mask = torch.zeros((rows, longest), dtype=torch.long)
    for r, p in enumerate(prompts):  # left padding: every answer starts at the same column
        ids[r, longest - len(p):] = torch.tensor(list(p), dtype=torch.long)
        mask[r, longest - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)

    cache, next_token = _prefill(model, ids, mask, positions, max(1, prefill_tokens // longest))
    position = positions[:, -1]
    live = list(range(rows))  # original row of each row still in the batch
    tokens: list[list[int]] = [[] for _ in range(rows)]
    stops = [STOP_LENGTH] * rows
    scanners = [JsonEnd() for _ in range(rows)]
    for scanner, text in zip(scanners, forced or []):
        scanner.feed(json_chars(text))
    pending = [next_token]
    for step in range(1, max_new_tokens + 1):
        if step % check_every == 0 or step == max_new_tokens:
            finished = _collect(torch.stack(pending, 1).tolist(), live, tokens, stops, scanners,
                                char_table if stop_at_json_end else None, eos_id)
            pending = []
            if finished:
                keep = [k for k, row in enumerate(live) if row not in finished]
                if not keep:
                    break
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                next_token, mask, position = next_token[index], mask[index], position[index]
                live = [live[k] for k in keep]
        if step == max_new_tokens:
            break
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        position = position + 1
        out = model(input_ids=next_token[:, None], attention_mask=mask, position_ids=position[:, None],
                    past_key_values=cache, use_cache=True, logits_to_keep=1)
        next_token = out.logits[:, -1].argmax(-1)
        pending.append(next_token)
    return [
        Generated(tuple(t), tokenizer.decode(t, skip_special_tokens=False), stop, len(p))
        for t, stop, p in zip(tokens, stops, prompts)
    ]


def _prefill(model: Any, ids: Any, mask: Any, positions: Any, chunk_rows: int) -> tuple[Any, Any]:
    """Run the prompts in chunks of rows (bounded activation memory) into one cache; the first new token."""
    import torch
    from transformers import DynamicCache

    caches, firsts = [], []
    for start in range(0, ids.shape[0], chunk_rows):
        part = slice(start, start + chunk_rows)
        cache = DynamicCache()
        out = model(input_ids=ids[part], attention_mask=mask[part], position_ids=positions[part],
                    past_key_values=cache, use_cache=True, logits_to_keep=1)
        caches.append(cache)
        firsts.append(out.logits[:, -1].argmax(-1))
        del out
    if len(caches) == 1:
        return caches[0], firsts[0]
    merged = DynamicCache()
    for layer in range(len(caches[0].layers)):
        keys = torch.cat([c.layers[layer].keys for c in caches])
        values = torch.cat([c.layers[layer].values for c in caches])
        for c in caches:
            c.layers[layer].keys = c.layers[layer].values = None  # free each chunk's copy at once
        merged.update(keys, values, layer)
    return merged, torch.cat(firsts)


def _collect(chunk: list[list[int]], live: list[int], tokens: list[list[int]], stops: list[str],
             scanners: list[JsonEnd], char_table: list[str] | None, eos_id: int | None) -> set[int]:
    """Append the chunk of new tokens to each live row; returns the rows that finished in it."""
    finished: set[int] = set()
    for k, row in enumerate(live):
        for token in chunk[k]:
            if eos_id is not None and token == eos_id:
                stops[row] = STOP_EOS
                finished.add(row)
                break
            tokens[row].append(token)
            chars = char_table[token] if char_table is not None and token < len(char_table) else ""
            if chars and scanners[row].feed(chars):
                stops[row] = STOP_JSON
                finished.add(row)
                break
    return finished
