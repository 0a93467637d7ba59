"""Data pipeline: sources (the `data` group), filters (`filter`), tokenizers, cached preparation."""
