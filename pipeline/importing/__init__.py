"""Import NLI pairs and the original pipeline's thought / reflection files into the store.

Formats (auto-detected by extension and by the fields of the first record):
- `csv`: header with `premise`, `hypothesis`, `label` (and optionally `id`);
- `jsonl`: one object per line with the same fields;
- `seed-thoughts`: JSON Lines of stage-1 output (`id, premise, hypothesis, thought_process,
  predicted_label, true_label`, optionally `raw_response`);
- `seed-reflections`: JSON Lines of stage-3 output (`id, premise, hypothesis, thought_process`
  (the flawed thought), `predicted_label` (the reflection's label), `true_label`, `error_analysis`,
  `improved_thought_process`).

Text is stored exactly as given. A whole import is one transaction: bad input writes nothing,
unless `skip_bad`, which imports the good rows and writes the rejected ones to a report.
"""
from pipeline.importing.core import FORMATS, ImportReport, import_file, write_rejected
from pipeline.importing.errors import BadRow, ImportFailed
from pipeline.importing.readers import default_names, detect_format

__all__ = ["FORMATS", "BadRow", "ImportFailed", "ImportReport", "default_names", "detect_format",
           "import_file", "write_rejected"]
