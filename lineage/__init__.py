"""Lineage and audit of deletions: the hash-chained ledger, trace / verify / reproduce, and purge.

Unlike the core package `bayesunlearn`, this package knows git and DVC: it reads
dvc.lock, commits events and runs `dvc repro` / `dvc gc`. The `deletions` console
script is `lineage.cli:main`.
"""
