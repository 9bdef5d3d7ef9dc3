"""Errors that mean "this input or parameter cannot be used"; each message says how to fix it.

They live in one TensorFlow-free module so that every caller (stages, flows,
CLI) can catch them all as `UserError` and report one clear line, then exit
with the error's `exit_code`: a code of `Exit`, the exit codes of every command
(what each means, for the help texts and the docs: bayesunlearn/exits.py).
"""

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    FAILED = 1
    INPUT = 2
    LEDGER = 3
    NOT_REPRODUCIBLE = 4
    GIT = 5
    STAGE = 6
    SERVER = 7


class UserError(ValueError):
    """Bad input or an impossible parameter, as opposed to a bug."""

    exit_code = Exit.INPUT


class ConfigError(UserError):
    """An impossible parameter in params.yaml."""


class DataError(UserError):
    """Input data that cannot be used as it is."""


class RequestError(UserError):
    """A deletion request that cannot be applied: names the file (`source`) and the rule it breaks."""

    def __init__(self, source: str, rule: str, detail: str) -> None:
        super().__init__(f"{source}: {detail}")
        self.source, self.rule, self.detail = source, rule, detail

    def __reduce__(self):  # picklable across processes (Prefect, Dask) despite the extra arguments
        return type(self), (self.source, self.rule, self.detail)


class NotPositiveDefinite(UserError):
    """A precision matrix that is not positive definite cannot define a Gaussian."""
