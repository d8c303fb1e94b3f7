"""driftloop's own error types.

Airflow tasks retry on faults (a network blip, a server restart, a killed worker) and fail at once,
without retries, on a ``DriftloopError``: bad data or a broken config, which trying again cannot
fix. That split is why library code raises these instead of bare ``ValueError``.
"""

from __future__ import annotations


class DriftloopError(Exception):
    """Base of the errors that retrying cannot fix; the message says what to change."""


class DataError(DriftloopError, ValueError):
    """The data is wrong: a batch, a labels file, a window without enough rows."""


class RunConfError(DriftloopError, ValueError):
    """A run's conf or form is wrong: no window, an unreadable date, a duration like "90 days"."""


class RegistryError(DriftloopError):
    """The model registry is not in the state an action needs (no earlier champion to roll back
    to, an unknown version, ``@champion`` moved since the comparison): a person must look, and
    trying again would only repeat the refusal."""
