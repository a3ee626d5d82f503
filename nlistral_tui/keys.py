"""Keys as the user sees them: the bindings' defaults with the config file's [keymap] applied."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from textual.app import App
from textual.binding import Binding, BindingType


def effective_keys(app: App[Any], bindings: Iterable[BindingType]) -> list[tuple[str, str, str]]:
    """(binding id, keys as displayed, description) for each binding with an id, keymap applied."""
    keymap: Mapping[str, str] = getattr(app, "keymap", {})
    rows = []
    for binding in bindings:
        if not isinstance(binding, Binding) or not binding.id:
            continue
        keys = keymap.get(binding.id, binding.key)
        shown = " ".join(app.get_key_display(binding.with_key(k.strip())) for k in keys.split(","))
        rows.append((binding.id, shown, binding.tooltip or binding.description))
    return rows


def unknown_ids(keymap: Mapping[str, str], bindings: Iterable[BindingType]) -> list[str]:
    """Keymap entries that name no binding (a typo in the config file)."""
    known = {b.id for b in bindings if isinstance(b, Binding) and b.id}
    return sorted(set(keymap) - known)
