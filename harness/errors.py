"""Errors the CLI turns into one clear line and a non-zero exit code (no traceback)."""

from __future__ import annotations


class BenchError(RuntimeError):
    """Base of user-facing errors; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class WeightsMissingError(BenchError):
    """Model or metric weights are not on disk (and cannot be fetched here)."""

    exit_code = 3


class DataMissingError(BenchError):
    """A dataset is not where the adapter looks for it."""

    exit_code = 3


class TrainingError(BenchError):
    """Training refused to start or produced an invalid result."""

    exit_code = 4


class PluginError(BenchError):
    """A method-kind plugin that cannot be loaded or does not implement the Method contract."""

    exit_code = 2


class RunInterrupted(BenchError):
    """A run stopped by SIGTERM or SIGINT (stored as failed: interrupted); exit 128 + the signal number."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
