"""Batched decoding: left padding, length-sorted batches, new tokens only, stop at the end of the JSON or turn.

Greedy by default (evaluate); sampled at a temperature for the local chat backend (pipeline/api/local_model.py,
which decodes generate's, reflect's and judge's requests with this same loop).

One loop for every device, over the batches batching.py plans. The key/value cache of a batch is
reserved once for the whole answer and filled in place (reserved_cache.py: no copy per token), masks
are built here as 4-D tensors (so nothing reads device values back per step), and the GPU is
synchronised only every `check_every` tokens, so the host queues the next steps while the device
computes. Rows that finish (their JSON object closed, or EOS) leave the batch at the next check.
Each prefill chunk is padded only to its own longest prompt.
"""
from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.evaluate.batching import plan_batches
from pipeline.evaluate.reserved_cache import reserve_cache

STOP_JSON = "json_end"
STOP_EOS = "eos"
STOP_LENGTH = "length"
_JSON_CHARS = frozenset('{}"\\')
# Speed settings (benchmarks/eval_speed.py); neither changes an answer.
CHECK_EVERY = 8  # new tokens between reads of the GPU (finished rows leave the batch at a read)
PREFILL_TOKENS = 32768  # prompt tokens per prefill chunk: bounds its activation memory


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

    __slots__ = ("depth", "escaped", "in_string")

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


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    batch_size: int | None = None,
    stop_at_json_end: bool = True,
    stop_at_eos: bool = True,
    check_every: int = CHECK_EVERY,
    prefill_tokens: int = PREFILL_TOKENS,
    char_table: list[str] | None = None,
    forced: Sequence[str] | None = None,
    stop_ids: Sequence[int] | None = None,
    max_memory_gib: float | None = None,
    temperature: float = 0.0,
) -> Iterator[BatchResult]:
    """Answers to encoded prompts, one BatchResult per finished batch (length-sorted order): greedy at
    temperature 0, else each token sampled from the softmax of the logits / temperature (no top-k, no top-p).

    batch_size None sizes batches from the memory available (plan_batches, under max_memory_gib); a batch
    that still runs out of memory is split in two and retried, down to one row (a row that does not fit
    raises). The prompt is never part of the output. With stop_at_json_end a row stops at the brace that
    closes its first JSON object; `forced` is, per prompt, answer text already written at the end of the
    prompt (counted there).
    With stop_at_eos a row stops at any of stop_ids (default: the tokenizer's EOS; exports.layout gives
    the chat template's end-of-turn too).
    """
    import torch

    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1")
    if stop_at_json_end and char_table is None:
        char_table = json_char_table(tokenizer)
    lengths = [len(p) for p in prompts]

    def fitting(batch: list[int]) -> Iterator[BatchResult]:
        """The batch's answers; a batch the card has no memory for is split in two and each half retried."""
        started, fits = time.perf_counter(), True
        try:
            with torch.inference_mode():
                outputs = _generate_batch(
                    model, tokenizer, [prompts[i] for i in batch], max_new_tokens=max_new_tokens,
                    stop_at_json_end=stop_at_json_end, stop_at_eos=stop_at_eos, check_every=check_every,
                    prefill_tokens=prefill_tokens, char_table=char_table,
                    forced=[forced[i] for i in batch] if forced is not None else None, stop_ids=stop_ids,
                    temperature=temperature,
                )
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                raise
            fits = False  # retried below, once this handler has let go of the failed batch's tensors
        if not fits:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            half = len(batch) // 2
            yield from fitting(batch[:half])
            yield from fitting(batch[half:])
            return
        yield BatchResult(tuple(batch), tuple(outputs), time.perf_counter() - started)

    for batch in plan_batches(model, lengths, max_new_tokens, batch_size, max_memory_gib=max_memory_gib):
        yield from fitting(batch)


def _generate_batch(model: Any, tokenizer: Any, prompts: list[Sequence[int]], *, max_new_tokens: int,
                    stop_at_json_end: bool, stop_at_eos: bool, check_every: int, prefill_tokens: int,
                    char_table: list[str] | None, forced: list[str] | None,
                    stop_ids: Sequence[int] | None = None, temperature: float = 0.0) -> list[Generated]:
    import torch

    device = next(model.parameters()).device
    rows, longest = len(prompts), max(len(p) for p in prompts)
    capacity = longest + max_new_tokens
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ends = stop_ids if stop_ids is not None else (tokenizer.eos_token_id,)
    eos_ids = frozenset(i for i in ends if i is not None) if stop_at_eos else frozenset()
    ids = torch.full((rows, longest), pad_id, dtype=torch.long)
    real = torch.zeros((rows, capacity), dtype=torch.bool)  # which cache positions hold real tokens
    for r, p in enumerate(prompts):  # left padding: every answer starts at the same column
        ids[r, longest - len(p):] = torch.tensor(list(p), dtype=torch.long)
        real[r, longest - len(p):longest] = True
    ids, real = ids.to(device), real.to(device)
    cache = reserve_cache(model, rows, capacity, device)
    keyword = cache_keyword(model)
    next_token = _prefill(model, ids, real[:, :longest], cache, max(1, prefill_tokens // longest), keyword,
                          temperature)
    position = real.sum(-1) - 1
    length = longest
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
                                char_table if stop_at_json_end else None, eos_ids)
            pending = []
            if finished:
                keep = [k for k, row in enumerate(live) if row not in finished]
                if not keep:
                    break
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                next_token, real, position = next_token[index], real[index], position[index]
                live = [live[k] for k in keep]
        if step == max_new_tokens:
            break
        real[:, length] = True
        length += 1
        position = position + 1
        out = model(input_ids=next_token[:, None], attention_mask=real[:, None, None, :length],
                    position_ids=position[:, None], use_cache=True, logits_to_keep=1, **{keyword: cache})
        next_token = choose(out.logits[:, -1], temperature)
        pending.append(next_token)
    return [
        Generated(tuple(t), tokenizer.decode(t, skip_special_tokens=False), stop, len(p))
        for t, stop, p in zip(tokens, stops, prompts)
    ]


def cache_keyword(model: Any) -> str:
    """The name under which the model's forward takes the key/value cache: `cache` from transformers 5.24
    (`past_key_values` there warns on every call and is removed in 5.40), `past_key_values` before it and in
    models that still take it. A PEFT wrapper forwards **kwargs, so the model it wraps decides."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def choose(logits: Any, temperature: float) -> Any:
    """The next token of each row: the most likely at temperature 0, else sampled at that temperature."""
    import torch

    if temperature <= 0:
        return logits.argmax(-1)
    return torch.multinomial((logits.float() / temperature).softmax(-1), 1).squeeze(-1)


def _prefill(model: Any, ids: Any, real: Any, cache: Any, chunk_rows: int, keyword: str,
             temperature: float = 0.0) -> Any:
    """Run the prompts into the reserved cache in chunks of rows, each padded only to its own longest
    prompt (bounded activation memory, little padding); returns the first new token of each row."""
    import torch

    longest = ids.shape[1]
    firsts = []
    for start in range(0, ids.shape[0], chunk_rows):
        rows = slice(start, start + chunk_rows)
        width = int(real[rows].sum(-1).max())  # rows are length-sorted, but do not rely on it
        cols = slice(longest - width, longest)
        keys = real[rows, cols]
        causal = torch.ones(width, width, dtype=torch.bool, device=ids.device).tril()
        # A padded query attends to itself only, so its (masked, unused) states stay finite.
        mask = (causal & keys[:, None, None, :]) | torch.eye(width, dtype=torch.bool, device=ids.device)
        out = model(input_ids=ids[rows, cols], attention_mask=mask, position_ids=(keys.cumsum(-1) - 1).clamp(min=0),
                    use_cache=True, logits_to_keep=1, **{keyword: cache.window(rows, longest - width)})
        firsts.append(choose(out.logits[:, -1], temperature))
        del out
    cache.fill(longest)
    return torch.cat(firsts)


def _collect(chunk: list[list[int]], live: list[int], tokens: list[list[int]], stops: list[str],
             scanners: list[JsonEnd], char_table: list[str] | None, eos_ids: frozenset[int]) -> set[int]:
    """Append the chunk of new tokens to each live row; returns the rows that finished in it."""
    finished: set[int] = set()
    for k, row in enumerate(live):
        for token in chunk[k]:
            if token in eos_ids:
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
