"""Experiments: unlearning judged against retrains from scratch (evaluation), the study and sweep grids,
their figures, and the readable reports of a run."""
