"""Errors a user can act on.

Every user-facing problem raises an :class:`UrbanflowError` whose message says what was
received, what was expected and how to fix it. The CLI prints it on one line and exits with
status 2; the service maps it to a 4xx response.
"""

from __future__ import annotations


class UrbanflowError(Exception):
    """Base of every error caused by input a user can correct."""


class DataError(UrbanflowError):
    """A data file or dataset value is missing, malformed or inconsistent."""


class UnknownNameError(UrbanflowError, KeyError):
    """A registry lookup (dataset, model, protocol) named something that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NotFittedError(UrbanflowError, ValueError):
    """A forecaster was asked to predict before it was fitted."""


class DownloadError(UrbanflowError):
    """A dataset could not be fetched or failed its checksum."""


class ConfigError(UrbanflowError):
    """An option (split, horizons, protocol, hyperparameter) is out of range."""


class DistributedError(UrbanflowError):
    """A process of a multi-process run failed, or processes cannot be launched as asked."""


class NotReadyError(UrbanflowError):
    """The service cannot answer yet: e.g. too few readings stored to forecast."""


class PayloadTooLargeError(UrbanflowError):
    """A request carries more than the service accepts at once."""


class AuthError(UrbanflowError):
    """A write request came without the bearer token the service requires."""


class StoreError(UrbanflowError):
    """The reading store cannot be opened (in use, newer format, not a store)."""


class UnsupportedMediaError(DataError):
    """A request body is in a format the service does not read (neither JSON nor CSV)."""
