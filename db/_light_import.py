"""Import sqlite-utils without pandas and numpy (half a second of every command's start).

sqlite-utils imports them only to convert their types in `Table.insert`, which this project never
calls (it writes with plain SQL). They are hidden only while sqlite-utils loads; a later
`import pandas` (training, datasets) works as usual.
"""
from __future__ import annotations

import sys

_hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
for _name in _hidden:
    sys.modules[_name] = None  # type: ignore[assignment]  # makes `import pandas` raise ImportError
try:
    import sqlite_utils  # noqa: F401
finally:
    for _name in _hidden:
        del sys.modules[_name]
