"""The user guide's ``RetryConfig`` and ``RetryHandler``: settings for the run's retry policy.

They hold no retry loop of their own: a run given a ``RetryHandler`` turns its
config into the engine's retry settings (``enable_retry``, ``max_retries``,
``retry_initial_delay``, ``retry_max_delay``), and the workers retry exactly
as every other run does (``dms_pkg.engine.retry``): transient failures only
(connection lost, serialization failure, deadlock, lock timeout, too many
connections, ...), exponential backoff from ``initial_delay`` doubling up to
``max_delay``, with jitter.  A data or SQL error fails its chunk at once.

A field left ``None`` keeps the value of the layers below (the environment,
``MAPPER_PARALLEL_MAX_RETRIES`` and friends, then the built-in default);
values are checked when the run starts, like every setting, and a bad one is
refused naming the setting, its range and ``RetryConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dms_pkg.engine import retry


@dataclass(frozen=True)
class RetryConfig:
    max_retries: int | None = None  # retries of one chunk; 0 disables retrying
    initial_delay: float | None = None  # seconds before the first retry
    max_delay: float | None = None  # longest wait between two attempts, in seconds

    def settings(self) -> dict[str, Any]:
        """The engine settings this config sets (those not left None)."""
        values = {"max_retries": self.max_retries, "retry_initial_delay": self.initial_delay,
                  "retry_max_delay": self.max_delay}
        chosen = {k: v for k, v in values.items() if v is not None}
        if chosen:
            # Configuring retries asks for them, whatever the environment says.
            chosen["enable_retry"] = True
        return chosen


class RetryHandler:
    """Carries a ``RetryConfig`` to a run (``ParallelProcessor(retry_handler=...)``)."""

    def __init__(self, config: RetryConfig | None = None) -> None:
        self.config = config or RetryConfig()

    def settings(self) -> dict[str, Any]:
        return self.config.settings()

    @staticmethod
    def is_retryable(sqlstate: str | None) -> bool:
        """Whether a chunk that failed with ``sqlstate`` is retried (None: the
        connection was lost before the server said why)."""
        return retry.is_transient(sqlstate)

    def __repr__(self) -> str:
        return f"RetryHandler({self.config!r})"
