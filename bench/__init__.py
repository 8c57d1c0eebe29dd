"""The benchmark harness: `uv run python -m bench.run` (see the README's Performance section)."""
