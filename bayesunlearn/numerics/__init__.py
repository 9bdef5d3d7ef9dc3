"""Numerics on plain arrays: in-place dense linear algebra, BLAS threading, distances and scores. No TensorFlow."""
