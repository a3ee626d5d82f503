"""Evaluation of a fine-tuned adapter (or a base model): batched greedy decoding, parsing, metrics, storage.

Modules: runner (`nlistral evaluate`: options, examples, resume, storing predictions), earlier_runs
(the run to resume, the model's own thoughts for --shuffle-thoughts), summary (a run's metrics as
typed dicts), compare (`nlistral compare`), overlap (leakage against the adapter's training data),
prompts (the training prompt, encoded), loading (base + adapter; NF4 set-up in pipeline.quantization),
merge (dequantise and fold LoRA), generation (the decoding loop), batching (which prompts decode
together), reserved_cache (the in-place key/value cache), errors. Their SQL is in db/predictions.py,
db/examples_read.py and db/exports_log.py; the Rich views in pipeline/views/evaluate.py.
"""
