"""The GPU's memory as a command sees it: what is free on the card, and a cap on what this process may hold
(evaluate's --max-memory, training's max_memory_gib). Read on CUDA only; the planners that use it take plain
byte counts, so they are tested without a GPU."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GIB = 2**30


@dataclass(frozen=True)
class Card:
    """The GPU as a command sees it: bytes free now, and the cap on what this process holds (if any)."""

    free: int
    cap: int | None = None

    def available(self, allocated: int) -> int:
        """Bytes this process may still take (allocated: what it holds already)."""
        return max(0, min(self.free, self.cap - allocated) if self.cap is not None else self.free)

    def describe(self, cap_name: str = "--max-memory") -> str:
        """Where the limit comes from, for messages: the cap (named as the command's user sets it) or the card."""
        if self.cap is not None:
            return f"the {cap_name} cap of {self.cap / GIB:.1f} GiB"
        return f"the {self.free / GIB:.1f} GiB free on the card"


def read_card(device: Any, max_memory_gib: float | None = None) -> Card:
    """The card of device now (CUDA only)."""
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    return Card(int(free), int(max_memory_gib * GIB) if max_memory_gib is not None else None)


def allocated(device: Any) -> int:
    """Bytes this process holds on the card."""
    import torch

    return int(torch.cuda.memory_allocated(device))
