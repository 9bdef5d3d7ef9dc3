"""Benchmarks (`make bench`): machine-readable JSON, ratios measured side by side in one process."""
