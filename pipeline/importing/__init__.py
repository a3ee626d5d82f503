"""Import NLI pairs and the original pipeline's thought / reflection files into the store.

Formats (auto-detected by extension and by the fields of the first record):
- `csv` / `tsv`: a header naming the columns (`.tsv`, and tab-separated `.txt`, have no quoting);
- `jsonl`: one object per line;
- `seed-thoughts`: JSON Lines of stage-1 output (`id, premise, hypothesis, thought_process,
  predicted_label, true_label`, optionally `raw_response`);
- `seed-reflections`: JSON Lines of stage-3 output (`id, premise, hypothesis, thought_process`
  (the flawed thought), `predicted_label` (the reflection's label), `true_label`, `error_analysis`,
  `improved_thought_process`).
Pairs come in a recognised layout (ours: `premise, hypothesis, label[, id]`; SNLI / MultiNLI; ANLI:
pipeline/importing/layouts.py) or the one `columns` names.

Text is stored exactly as given. A whole import is one transaction: bad input writes nothing,
unless `skip_bad`, which imports the good rows and writes the rejected ones to a report.
"""
from pipeline.importing.core import ImportReport, import_file
from pipeline.importing.errors import BadOption, BadRow, ImportFailed, ReportFailed
from pipeline.importing.names import choose_names, default_names
from pipeline.importing.plan import FORMATS, ImportPlan, plan_import
from pipeline.importing.readers import detect_format
from pipeline.importing.rejected import (
           check_report,
           default_report_path,
           write_rejected,
)

__all__ = ["FORMATS", "BadOption", "BadRow", "ImportFailed", "ImportPlan", "ImportReport", "ReportFailed",
           "check_report", "choose_names", "default_names", "default_report_path", "detect_format", "import_file",
           "plan_import", "write_rejected"]
