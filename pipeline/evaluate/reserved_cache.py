"""The key/value cache of one decoding batch, reserved once for the whole answer and filled in place.

A transformers DynamicCache whose layers write into zeroed buffers of (rows, kv heads, prompt + answer
positions, head dim), so no step copies the cache; `keys`/`values` are views of the filled part.
Prefill chunks write rows of the same buffers through `window`. The classes are built on first use,
so transformers is imported only then.
"""
from __future__ import annotations

import functools
from typing import Any


def reserve_cache(model: Any, rows: int, capacity: int, device: Any) -> Any:
    """A cache whose layers write into zeroed buffers reserved for `rows` rows of `capacity` positions."""
    import torch

    layer_class, cache_class = _cache_classes()
    shape = (rows, kv_heads(model), capacity, head_dim(model))
    dtype = activation_dtype(model)
    return cache_class([layer_class(torch.zeros(shape, dtype=dtype, device=device),
                                    torch.zeros(shape, dtype=dtype, device=device))
                        for _ in range(model.config.num_hidden_layers)])


def kv_bytes_per_token(model: Any) -> int:
    """Bytes of key/value cache one token costs across all layers."""
    layers, itemsize = int(model.config.num_hidden_layers), int(activation_dtype(model).itemsize)
    return 2 * layers * kv_heads(model) * head_dim(model) * itemsize


def kv_heads(model: Any) -> int:
    """Key/value heads per layer (grouped-query attention has fewer than query heads)."""
    cfg = model.config
    return int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)


def head_dim(model: Any) -> int:
    """Width of one attention head."""
    cfg = model.config
    return int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)


def activation_dtype(model: Any) -> Any:
    """The dtype activations (and so the cache) have: that of the first floating-point parameter."""
    return next(p.dtype for p in model.parameters() if p.is_floating_point())


@functools.cache
def _cache_classes() -> tuple[type, type]:
    """The reserved-buffer layer and cache classes."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    # transformers' cache classes are only partly typed: subclassed as Any, so their untyped
    # __init_subclass__ / __init__ are not checked against this module.
    layer_base: Any = DynamicLayer
    cache_base: Any = DynamicCache

    class ReservedLayer(layer_base):  # type: ignore[misc]
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

    class ReservedCache(cache_base):  # type: ignore[misc]
        """A DynamicCache over ReservedLayers."""

        def __init__(self, layers: list[ReservedLayer]) -> None:
            super().__init__()
            self.layers, self.layer_class_to_replicate = layers, None
            self.reserved = layers

        def window(self, rows: slice, start: int) -> ReservedCache:
            """A cache writing rows `rows` from column `start` of the same buffers (a prefill chunk)."""
            return ReservedCache([ReservedLayer(l.buf_k[rows], l.buf_v[rows], start) for l in self.reserved])

        def fill(self, length: int) -> None:
            """Declare the first `length` columns filled (after the prefill chunks wrote them)."""
            for layer in self.reserved:
                layer.start, layer.length = 0, length
                layer._views()

    return ReservedLayer, ReservedCache
