"""What the machine offers for training: CUDA, bitsandbytes, the process's rank in a DDP launch."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from pipeline.quantization import bitsandbytes_installed


def is_main_process() -> bool:
    """True in the process that writes logs, the database row and the adapter (rank 0, or no launcher)."""
    return int(os.environ.get("RANK", "0")) == 0


@dataclass(frozen=True)
class Hardware:
    """The facts that decide quantization, attention, optimizer and precision."""

    cuda: bool
    gpu_name: str | None
    gpu_count: int
    bitsandbytes: bool
    world_size: int  # processes in this launch (accelerate launch / torchrun); 1 otherwise
    local_rank: int  # this process's GPU index
    liger: bool = False  # liger-kernel (and triton) importable: fused training kernels

    @property
    def is_main(self) -> bool:
        """True in the process that writes logs, the database row and the adapter."""
        return is_main_process()

    def describe(self) -> str:
        """One line for the log."""
        if not self.cuda:
            return f"CPU only (no CUDA), {self.world_size} process(es): plain LoRA in float32, no 4-bit quantization"
        bnb = "bitsandbytes present" if self.bitsandbytes else "bitsandbytes MISSING"
        return f"{self.gpu_count} x {self.gpu_name}; {self.world_size} process(es); {bnb}"


def detect() -> Hardware:
    """Probe torch and bitsandbytes (imports torch: call inside commands only)."""
    import torch

    cuda = torch.cuda.is_available()
    return Hardware(
        cuda=cuda,
        gpu_name=torch.cuda.get_device_name(0) if cuda else None,
        gpu_count=torch.cuda.device_count() if cuda else 0,
        bitsandbytes=bitsandbytes_installed(),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        liger=all(importlib.util.find_spec(name) is not None for name in ("liger_kernel", "triton")),
    )
