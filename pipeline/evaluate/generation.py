"""Batched greedy decoding: left padding, length-sorted batches, new tokens only, stop at the end of the JSON.

One loop for every device. The key/value cache of a batch is reserved once for the whole answer and
filled in place (no copy of the cache per token), masks are built here as 4-D tensors (so nothing
reads device values back per step), and the GPU is synchronised only every `check_every` tokens, so
the host queues the next steps while the device computes. Rows that finish (their JSON object
closed, or EOS) leave the batch at the next check. Each prefill chunk is padded only to its own
longest prompt.
"""
from __future__ import annotations

import functools
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


def length_sorted_batches(lengths: Sequence[int], batch_size: int, *, max_new_tokens: int = 0,
                          max_tokens: int | None = None) -> list[list[int]]:
    """Prompt positions grouped into batches of similar length, longest first (memory trouble shows early).

    A batch holds at most batch_size rows and, with max_tokens, at most that many cache tokens
    (rows x (its longest prompt + max_new_tokens)).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and (
                max_tokens is None or (len(batches[-1]) + 1) * (lengths[batches[-1][0]] + max_new_tokens) <= max_tokens):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def kv_bytes_per_token(model: Any) -> int:
    """Bytes of key/value cache one token costs across all layers."""
    return 2 * model.config.num_hidden_layers * _kv_heads(model) * _head_dim(model) * _dtype(model).itemsize


def plan_batches(model: Any, lengths: Sequence[int], max_new_tokens: int, batch_size: int | None,
                 *, cap: int = 1024) -> list[list[int]]:
    """Batches for these prompts: batch_size rows each when given; else 8 rows on CPU, and on CUDA as many
    rows (up to cap) as the free memory holds caches for."""
    import torch

    if batch_size is not None:
        return length_sorted_batches(lengths, batch_size)
    device = next(model.parameters()).device
    if device.type != "cuda":
        return length_sorted_batches(lengths, 8)
    free, _ = torch.cuda.mem_get_info(device)
    reserve = 12 * 2**30  # one prefill chunk's activations, logits, allocator slack
    budget = max(1, int((free - reserve) // kv_bytes_per_token(model)))
    return length_sorted_batches(lengths, cap, max_new_tokens=max_new_tokens, max_tokens=budget)


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

    batch_size None sizes batches from free memory (plan_batches). The prompt is never part of the
    output. With stop_at_json_end a row stops at the brace that closes its first JSON object;
    `forced` is, per prompt, answer text already written at the end of the prompt (counted there).
    """
    import torch

    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1")
    if stop_at_json_end and char_table is None:
        char_table = json_char_table(tokenizer)
    lengths = [len(p) for p in prompts]
    for batch in plan_batches(model, lengths, max_new_tokens, batch_size):
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
    capacity = longest + max_new_tokens
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_id = tokenizer.eos_token_id if stop_at_eos else None
    ids = torch.full((rows, longest), pad_id, dtype=torch.long)
    real = torch.zeros((rows, capacity), dtype=torch.bool)  # which cache positions hold real tokens
    for r, p in enumerate(prompts):  # left padding: every answer starts at the same column
        ids[r, longest - len(p):] = torch.tensor(list(p), dtype=torch.long)
        real[r, longest - len(p):longest] = True
    ids, real = ids.to(device), real.to(device)
    cache = _reserve_cache(model, rows, capacity, device)
    next_token = _prefill(model, ids, real[:, :longest], cache, max(1, prefill_tokens // longest))
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
                                char_table if stop_at_json_end else None, eos_id)
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
                    position_ids=position[:, None], past_key_values=cache, use_cache=True, logits_to_keep=1)
        next_token = out.logits[:, -1].argmax(-1)
        pending.append(next_token)
    return [
        Generated(tuple(t), tokenizer.decode(t, skip_special_tokens=False), stop, len(p))
        for t, stop, p in zip(tokens, stops, prompts)
    ]


def _prefill(model: Any, ids: Any, real: Any, cache: Any, chunk_rows: int) -> Any:
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
                    past_key_values=cache.window(rows, longest - width), use_cache=True, logits_to_keep=1)
        firsts.append(out.logits[:, -1].argmax(-1))
        del out
    cache.fill(longest)
    return torch.cat(firsts)


def _reserve_cache(model: Any, rows: int, capacity: int, device: Any) -> Any:
    """A transformers cache whose layers write into zeroed buffers reserved for the whole batch and answer."""
    import torch

    layer_class, cache_class = _cache_classes()
    shape = (rows, _kv_heads(model), capacity, _head_dim(model))
    dtype = _dtype(model)
    return cache_class([layer_class(torch.zeros(shape, dtype=dtype, device=device),
                                    torch.zeros(shape, dtype=dtype, device=device))
                        for _ in range(model.config.num_hidden_layers)])


@functools.cache
def _cache_classes() -> tuple[type, type]:
    """The reserved-buffer cache classes (built on first use: transformers is imported only then)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    class ReservedLayer(DynamicLayer):
        """Keys and values of one layer in a reserved buffer; `keys`/`values` are views of the filled part."""

        def __init__(self, buf_k: Any, buf_v: Any, start: int = 0, length: int = 0) -> None:
            super().__init__()
            self.buf_k, self.buf_v, self.start, self.length = buf_k, buf_v, start, length
            self.dtype, self.device, self.is_initialized = buf_k.dtype, buf_k.device, True
            self._views()

        def _views(self) -> None:
            end = self.start + self.length
            self.keys, self.values = self.buf_k[:, :, self.start:end], self.buf_v[:, :, self.start:end]

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            return None

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            at = self.start + self.length
            end = at + key_states.shape[-2]
            if end > self.buf_k.shape[-2]:
                raise RuntimeError(f"the reserved cache holds {self.buf_k.shape[-2]} positions, not {end}")
            self.buf_k[:, :, at:end] = key_states
            self.buf_v[:, :, at:end] = value_states
            self.length = end - self.start
            self._views()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def batch_select_indices(self, indices: Any) -> None:
            self.buf_k, self.buf_v = self.buf_k[indices], self.buf_v[indices]
            self._views()

    class ReservedCache(DynamicCache):
        """A DynamicCache over ReservedLayers."""

        def __init__(self, layers: list[Any]) -> None:
            super().__init__()
            self.layers, self.layer_class_to_replicate = layers, None

        def window(self, rows: slice, start: int) -> ReservedCache:
            """A cache writing rows `rows` from column `start` of the same buffers (a prefill chunk)."""
            return ReservedCache([ReservedLayer(l.buf_k[rows], l.buf_v[rows], start) for l in self.layers])

        def fill(self, length: int) -> None:
            """Declare the first `length` columns filled (after the prefill chunks wrote them)."""
            for layer in self.layers:
                layer.start, layer.length = 0, length
                layer._views()

    return ReservedLayer, ReservedCache


def _kv_heads(model: Any) -> int:
    cfg = model.config
    return getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads


def _head_dim(model: Any) -> int:
    cfg = model.config
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def _dtype(model: Any) -> Any:
    """The dtype activations (and so the cache) have: that of the first floating-point parameter."""
    return next(p.dtype for p in model.parameters() if p.is_floating_point())


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
