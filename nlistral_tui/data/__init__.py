"""What the app reads and writes, without Textual: per-thread connections, example details, review stats."""
