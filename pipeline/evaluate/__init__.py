"""Evaluation of a fine-tuned adapter (or a base model): batched greedy decoding, parsing, metrics, storage."""
