"""How many decoder layers recompute their activations in the backward pass (activation checkpointing).

A checkpointed layer keeps only its input for the backward and runs its forward a second time there: with
QLoRA that is a quarter of the layer's work again (forward 1, recompute 1, backward 2, since the frozen
weights need no gradient), in exchange for a few hundred KiB per token of activations. So every layer that
need not be checkpointed is time saved, and the memory decides how many must be.

`gradient_checkpointing` in the training config:
  full   every decoder layer (least memory)
  none   none (fastest, most memory)
  N      the first N decoder layers; the others keep their activations
  auto   (the default) as few as fit: the bytes per token that one decoder layer keeps are measured on the
         run's own model (a forward of the longest training row through the first layer, stopped there:
         the real dtypes, LoRA dropout copies and attention kernel), and the fewest layers are checkpointed
         for which the largest micro-batch's activations fit in the memory left after loading (the card's
         free memory, or max_memory_gib), less HEADROOM of it. On CPU, and for DPO (chosen and rejected
         batches and a reference forward not measured here), auto is full, as before.
If a run that did not checkpoint every layer still runs out of memory in its first step, the runner
checkpoints every layer and starts again (pipeline/train/runner.py), and says so.

The estimate against the peaks measured on one H200 (benchmarks/results/train_speed.md, run 2; 7B shape, LoRA
r32): a layer of that shape keeps 205,700 bytes a token (measure_layer_bytes on the development VM, r16), the
4-bit base with its bf16 embeddings and head about 3.9 GiB (counted, not measured); so checkpointing every layer
at micro-batch 16 is estimated at 6.9 GiB (measured 6.5) and none at micro-batch 6 at 15.2 GiB (measured 15.4).
Speed: a layer not checkpointed skips its recompute, about a quarter of its work; not yet measured on a GPU
(benchmarks/train_gpu.sh's gradient_checkpointing=auto variants will).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline import gpu_memory
from pipeline.gpu_memory import GIB, Card
from pipeline.train.config import ConfigError, TrainConfig
from pipeline.train.data import Row
from pipeline.train.hardware import Hardware
from pipeline.train.model import compile_decoder_layers

# Of the memory available after loading, kept free for what the estimate leaves out: the optimizer's and
# gradients' few MiB for LoRA, the loss's chunked logits, the allocator's fragmentation with varying lengths.
HEADROOM = 0.2


@dataclass(frozen=True)
class LayerBytes:
    """Bytes per token that one decoder layer keeps for the backward pass."""

    full: int  # not checkpointed: every activation its backward reads
    checkpointed: int  # checkpointed: its input only


def decoder_layers(model: Any) -> list[Any]:
    """The model's decoder layers in order (the modules transformers can checkpoint one by one)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def activation_bytes(layers: int, checkpointed: int, per_token: LayerBytes, tokens: int) -> int:
    """Peak activation bytes of a micro-batch of `tokens` with the first `checkpointed` layers checkpointed:
    what the layers keep, plus one layer's worth for the backward's gradients and, where any layer is
    checkpointed, one more for the layer being recomputed."""
    kept = (layers - checkpointed) * per_token.full + checkpointed * per_token.checkpointed
    working = per_token.full * (2 if checkpointed else 1)
    return tokens * (kept + working)


def fewest_checkpointed(layers: int, per_token: LayerBytes, tokens: int, available: int) -> int | None:
    """The fewest layers to checkpoint so the activations fit in available less the headroom; None when even
    checkpointing every layer does not (the run then checkpoints all and may still run out of memory)."""
    budget = available * (1 - HEADROOM)
    for checkpointed in range(layers + 1):
        if activation_bytes(layers, checkpointed, per_token, tokens) <= budget:
            return checkpointed
    return None


def largest_micro_batch_tokens(lengths: Iterable[int], micro_batch_size: int, packed: bool) -> int:
    """Tokens of the largest micro-batch the data can make: its longest rows together (packed), or that many
    rows padded to the longest (not packed)."""
    longest = sorted(lengths, reverse=True)[:micro_batch_size]
    if not longest:
        return 0
    return sum(longest) if packed else longest[0] * len(longest)


class _StopAfterFirstLayer(Exception):
    pass


def measure_layer_bytes(model: Any, batch: dict[str, Any]) -> LayerBytes:
    """Bytes per token the first decoder layer keeps for the backward, measured: a training-mode forward of
    batch that stops after that layer, counting the tensors autograd saves in it (parameters excluded, each
    storage once). Nothing is kept: the stopped forward's graph is freed on return."""
    import torch

    layer = decoder_layers(model)[0]
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}
    inside = False

    def pack(tensor: Any) -> Any:
        if inside:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in params:
                saved.setdefault(storage.data_ptr(), storage.nbytes())
        return tensor

    def enter(_module: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
        nonlocal inside
        inside = True
        hidden = args[0] if args else kwargs["hidden_states"]
        sizes["input"] = hidden.element_size() * hidden.shape[-1]

    def leave(*_: Any) -> None:
        raise _StopAfterFirstLayer

    sizes: dict[str, int] = {}
    flag = getattr(layer, "gradient_checkpointing", False)
    layer.gradient_checkpointing = False
    hooks = [layer.register_forward_pre_hook(enter, with_kwargs=True), layer.register_forward_hook(leave)]
    was_training = model.training
    model.train()
    try:
        # eagerly, even where the layers were compiled before (the hooks must see every saved tensor)
        with (torch.compiler.set_stance("force_eager"), torch.enable_grad(),
              torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)):
            model(**batch)
    except _StopAfterFirstLayer:
        pass
    finally:
        for hook in hooks:
            hook.remove()
        layer.gradient_checkpointing = flag
        model.train(was_training)
    tokens = int(batch["input_ids"].numel())
    return LayerBytes(full=-(-sum(saved.values()) // tokens), checkpointed=sizes["input"])


def requested_layers(config: TrainConfig, layers: int) -> int | None:
    """The layers to checkpoint that the config names (full, none, N); None for auto."""
    value = config.gradient_checkpointing
    if value == "auto":
        return None
    if value == "full":
        return layers
    if value == "none":
        return 0
    count = int(value)
    if count > layers:
        raise ConfigError(f"gradient_checkpointing: {count} layers, but the model has {layers} decoder layers; "
                          f"use at most {layers} (or full)")
    return count


@dataclass(frozen=True)
class Checkpointing:
    """The decision for a run: how many of the model's decoder layers are checkpointed, and why."""

    layers: int
    checkpointed: int
    note: str  # one line for the log

    @property
    def config_value(self) -> str:
        """The same decision as a gradient_checkpointing value (full | none | N)."""
        if self.checkpointed == self.layers:
            return "full"
        return "none" if self.checkpointed == 0 else str(self.checkpointed)


def decide(config: TrainConfig, model: Any, card: Card | None, allocated: int, tokens: int,
           batch: dict[str, Any] | None) -> Checkpointing:
    """How many decoder layers this run checkpoints. card: the GPU (None on CPU); allocated: what the process
    holds after loading; tokens: the largest micro-batch's; batch: one collated training row to measure with."""
    layers = len(decoder_layers(model))
    named = requested_layers(config, layers)
    if named is not None:
        return Checkpointing(layers, named, f"checkpointing: {_count(named, layers)} (set in the config)")
    if card is None or config.method == "dpo" or batch is None:
        why = "on CPU" if card is None else "for DPO" if config.method == "dpo" else "with no training rows"
        return Checkpointing(layers, layers, f"checkpointing auto: every layer ({why} it is not planned)")
    per_token = measure_layer_bytes(model, batch)
    available = card.available(allocated)
    chosen = fewest_checkpointed(layers, per_token, tokens, available)
    cap = card.describe("max_memory_gib")
    measured = (f"a layer keeps {per_token.full / 1024:.0f} KiB a token, {per_token.checkpointed / 1024:.0f} KiB "
                f"checkpointed; the largest micro-batch has {tokens:,} tokens")
    if chosen is None:
        need = activation_bytes(layers, layers, per_token, tokens) / (1 - HEADROOM)
        return Checkpointing(layers, layers, (
            f"checkpointing auto: every layer, and even so the activations may not fit ({measured}; about "
            f"{need / GIB:.1f} GiB wanted, {available / GIB:.1f} GiB available under {cap}); lower "
            "micro_batch_size if it runs out of memory"))
    peak = activation_bytes(layers, chosen, per_token, tokens)
    return Checkpointing(layers, chosen, (
        f"checkpointing auto: {_count(chosen, layers)} ({measured}: about {peak / GIB:.1f} GiB of activations in "
        f"the {available / GIB:.1f} GiB available under {cap}, {HEADROOM:.0%} kept free)"))


def _count(checkpointed: int, layers: int) -> str:
    if checkpointed == layers:
        return f"every layer ({layers})"
    return "no layer" if checkpointed == 0 else f"{checkpointed} of {layers} layers"


def apply(model: Any, checkpointed: int) -> None:
    """Checkpoint exactly the first `checkpointed` decoder layers (the trainer has enabled checkpointing on
    every layer by then: this turns it off on the rest)."""
    for index, layer in enumerate(decoder_layers(model)):
        layer.gradient_checkpointing = index < checkpointed


def callback(decision: Checkpointing) -> Any:
    """A TrainerCallback that applies the decision when training begins (after the trainer enabled checkpointing
    on every layer); `layers_to_checkpoint` may be raised before a restart."""
    from transformers import TrainerCallback

    class CheckpointLayers(TrainerCallback):
        def __init__(self) -> None:
            self.layers_to_checkpoint = decision.checkpointed

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            if model is not None and args.gradient_checkpointing:
                apply(model, self.layers_to_checkpoint)

    return CheckpointLayers()


def _card(config: TrainConfig, hw: Hardware) -> tuple[Card | None, int]:
    """The GPU this process trains on and what it holds now; (None, 0) on CPU."""
    if not hw.cuda:
        return None, 0
    import torch

    device = torch.device("cuda", hw.local_rank)
    return gpu_memory.read_card(device, config.max_memory_gib), gpu_memory.allocated(device)


def setup_layers(trainer: Any, config: TrainConfig, hw: Hardware, rows: Sequence[Row]) -> tuple[Checkpointing, Any]:
    """Decide and install the run's checkpointing on a built trainer (its model wrapped in LoRA), then compile the
    decoder layers if the config says so (after measuring: the measurement runs the layers eagerly). Returns the
    decision and the callback that applies it (the runner raises its count to restart after running out of
    memory)."""
    card, held = _card(config, hw)
    batch = None
    if rows and card is not None and config.gradient_checkpointing == "auto" and config.method != "dpo":
        longest = max(rows, key=lambda row: len(row["input_ids"]))
        batch = trainer._prepare_inputs(trainer.data_collator([longest]))
    tokens = largest_micro_batch_tokens((len(row["input_ids"]) for row in rows), config.micro_batch_size,
                                        config.packing) if batch is not None else 0
    decision = decide(config, trainer.model, card, held, tokens, batch)
    installed = callback(decision)
    trainer.add_callback(installed)
    if config.compile == "on":  # after PEFT and TRL's fused head are in place, so the compiled layers include LoRA
        compile_decoder_layers(trainer.model)
    return decision, installed
