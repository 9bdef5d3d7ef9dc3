"""Prefect flows: deletion intake with a quality gate, the nightly audit, and their schedules.

Flows orchestrate and never compute: the math lives in `bayesunlearn`, the
work in DVC stages run as subprocesses. Flow parameters, task parameters,
results and logs carry request ids, paths and hashes only, never records.
"""
