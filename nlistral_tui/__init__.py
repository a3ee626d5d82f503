"""The review app (Textual): a keyboard-first workbench over the store. Only this package imports Textual."""
