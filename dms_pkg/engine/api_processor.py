"""The user guide's ``ParallelProcessor`` ("Option 2: Direct Usage"), over the one engine.

``ParallelProcessor(max_workers, chunk_size, retry_handler,
progress_tracker).process_mapper_job(source_conn=..., source_sql=...,
target_conn=..., target_schema=..., target_table=...)`` is
``execute_query_parallel`` with settings kept on an object: it runs through
``api.run_query`` with the same planner, paths, retries and result.

Settings layer as in DESIGN §5, later wins: built-in default, environment
(``MAPPER_...``), the processor's own (``max_workers``, ``chunk_size``,
``enable_parallel``), its ``RetryConfig``, then ``process_mapper_job``'s
arguments.  A value left ``None`` keeps the layer below.  They are checked
when the processor is made, so a bad one is refused there, naming the
setting and where it came from (``ParallelProcessor`` or ``RetryConfig``).
"""

from __future__ import annotations

from typing import Any

from dms_pkg.engine import config as cfg
from dms_pkg.engine.api import Layer, one_transformation, resolve_settings, run_query
from dms_pkg.engine.api_progress import ProgressTracker
from dms_pkg.engine.api_result import ParallelResult
from dms_pkg.engine.api_retry import RetryHandler
from dms_pkg.engine.transformation import Transform

PROCESSOR, RETRY, ARGUMENTS = "ParallelProcessor", "RetryConfig", "process_mapper_job"


class ParallelProcessor:
    """Runs mapper jobs' queries in parallel chunks with one set of settings."""

    def __init__(
        self,
        max_workers: int | None = None,
        chunk_size: int | None = None,
        enable_parallel: bool | None = None,
        retry_handler: RetryHandler | None = None,
        progress_tracker: ProgressTracker | None = None,
    ) -> None:
        self.max_workers = max_workers
        self.chunk_size = chunk_size
        self.retry_handler = retry_handler
        self.progress_tracker = progress_tracker
        self.enable_parallel = enable_parallel
        resolve_settings(self._layers())  # refuse bad settings now, not at the first job

    def _layers(self) -> list[Layer]:
        own: dict[str, Any] = {"max_workers": self.max_workers, "chunk_size": self.chunk_size,
                               "enable_parallel": self.enable_parallel}
        if self.progress_tracker is not None:
            own["enable_progress"] = True  # a tracker was asked for: feed it
        layers: list[Layer] = [(PROCESSOR, own)]
        if self.retry_handler is not None:
            layers.append((RETRY, self.retry_handler.settings()))
        return layers

    def process_mapper_job(
        self,
        source_conn: Any,
        source_sql: str,
        transformation_logic: Transform | None = None,
        target_conn: Any = None,
        target_schema: str | None = None,
        target_table: str | None = None,
        min_rows_for_parallel: int | None = None,
        transformation_func: Transform | None = None,
        **options: Any,
    ) -> ParallelResult:
        """Run ``source_sql`` and load ``target_schema.target_table`` (or return the
        rows without a target); ``options`` as for ``execute_query_parallel``."""
        transform = one_transformation(transformation_logic, transformation_func,
                                       ("transformation_logic", "transformation_func"))
        cfg.check_keys(options, "process_mapper_job options")
        arguments = {"min_rows_for_parallel": min_rows_for_parallel, **options}
        return run_query(source_conn, source_sql, transform, target_conn, target_schema,
                         target_table, [*self._layers(), (ARGUMENTS, arguments)],
                         self.progress_tracker)
