"""Engine settings, resolved in layers (DESIGN §5; later wins):

built-in defaults -> DMS_PARAMS rows (PRTYP 'PARALLEL', PRCD = the
environment name) -> environment variables -> job parameters -> the call's
own arguments (``p_params`` / Python keyword arguments).

Every value is checked against its type and range, and a bad one is refused
with a message naming the setting, where it came from, and the allowed
range.  An unknown key in ``p_params`` is refused too (a typo must not be
silently ignored on a nightly load).  The effective settings are recorded on
the run, each with its origin, so "why did it use 2 workers?" has an answer.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dms_pkg.db.base import Database
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

MAX_WORKERS_CAP = 64
PARAMS_TYPE = "PARALLEL"  # DMS_PARAMS.PRTYP of engine settings


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type  # bool, int, float or str
    default: Any
    env: str | None = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def describe_range(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is dict:
            return "a JSON object"
        if self.low is not None and self.high is not None:
            return f"from {self.low:g} to {self.high:g}"
        return f"a {self.kind.__name__}"


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("enable_parallel", bool, True, "MAPPER_PARALLEL_ENABLED",
                help="false runs every chunk in one worker"),
        Setting("max_workers", int, 4, "MAPPER_MAX_WORKERS", 1, MAX_WORKERS_CAP,
                help="parallel sessions; capped by the server's free connections"),
        Setting("chunk_size", int, 100_000, "MAPPER_CHUNK_SIZE", 1, 1_000_000_000,
                help="rows per chunk"),
        Setting("min_rows_for_parallel", int, 100_000, "MAPPER_MIN_ROWS_FOR_PARALLEL",
                0, 10**15, help="below this many estimated rows the run uses one worker"),
        Setting("enable_retry", bool, True, "MAPPER_PARALLEL_RETRY_ENABLED",
                help="retry chunks that failed for a transient reason"),
        Setting("max_retries", int, 3, "MAPPER_PARALLEL_MAX_RETRIES", 0, 100,
                help="retries of one chunk after a transient failure"),
        Setting("retry_initial_delay", float, 0.5, "MAPPER_PARALLEL_RETRY_INITIAL_DELAY",
                0, 600, help="seconds before the first retry; doubles each time"),
        Setting("retry_max_delay", float, 30.0, "MAPPER_PARALLEL_RETRY_MAX_DELAY", 0, 3600,
                help="longest wait between retries, in seconds"),
        Setting("enable_progress", bool, True, "MAPPER_PARALLEL_PROGRESS_ENABLED",
                help="report progress while the run goes"),
        # Per-run options: the call's own choices, no environment default.
        Setting("path", str, "auto", choices=("auto", "same_db", "copy", "rows"),
                help="data path; auto picks the fastest that fits"),
        Setting("write_mode", str, "append", choices=("append", "truncate"),
                help="truncate empties the target before loading"),
        Setting("create_target", bool, False,
                help="create a missing target table from the source's column types"),
        Setting("key", str, None, help="chunk key column(s); default: the primary key"),
        Setting("strategy", str, "auto",
                choices=("auto", "key_range", "quantile", "ctid", "hash", "offset", "single"),
                help="chunk strategy"),
        Setting("chunks", int, None, low=1, high=10_000,
                help="number of chunks; default: estimated rows / chunk_size"),
        Setting("if_busy", str, "refuse", choices=("refuse", "queue"),
                help="when another run is loading the target: refuse, or queue behind it"),
        Setting("copy_reader", str, "auto", choices=("auto", "psql", "psycopg"),
                help="who reads a COPY stream from the source: psql (no per-row Python; "
                "auto uses it when installed) or psycopg"),
        Setting("merge", dict, None,
                help="load through a staging table and merge: {\"kind\": \"append\" | "
                "\"scd\", \"keys\": [...], \"scd2\": [...], ...} (see docs/engine.md)"),
        Setting("checkpoint_column", str, None,
                help="incremental loads: record the largest value of this output column "
                "the run reads (dms.run.checkpoint_value)"),
        Setting("snapshot", bool, True,
                help="read the whole source as of one moment (an exported snapshot)"),
    )
}


@dataclass(frozen=True)
class EngineConfig:
    values: dict[str, Any]
    origins: dict[str, str]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def as_json(self) -> dict[str, Any]:
        return {k: {"value": v, "from": self.origins[k]} for k, v in self.values.items()}


_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}


def _convert(setting: Setting, raw: Any, origin: str) -> Any:
    def bad(reason: str = "") -> DmsError:
        return DmsError(
            f"{setting.name} must be {setting.describe_range()}, got {raw!r} (from {origin})"
            + (f": {reason}" if reason else ""),
            sqlstate=INVALID_PARAMETER_VALUE,
            hint=f"{setting.name}: {setting.help}" if setting.help else None,
        )

    if raw is None:
        if setting.default is None:
            return None
        raise bad()
    value: Any
    if setting.kind is bool:
        if isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            value = raw.strip().lower() in _TRUE
        else:
            raise bad()
    elif setting.kind in (int, float):
        if isinstance(raw, bool):
            raise bad()
        try:
            number = float(raw) if setting.kind is float else int(str(raw).strip())
        except ValueError:
            raise bad() from None
        if isinstance(raw, float) and setting.kind is int and raw != int(raw):
            raise bad()
        if setting.low is not None and number < setting.low:
            raise bad()
        if setting.high is not None and number > setting.high:
            raise bad()
        value = number
    elif setting.kind is dict:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise bad("not JSON") from None
        if not isinstance(raw, dict):
            raise bad("not a JSON object")
        value = raw
    else:
        if not isinstance(raw, str) or not raw.strip():
            raise bad()
        value = raw.strip()
        if setting.choices and value not in setting.choices:
            raise bad()
    return value


def dms_params_layer(db: Database) -> dict[str, str]:
    """Engine settings from DMS_PARAMS (PRTYP 'PARALLEL', PRCD = MAPPER_... name)."""
    rows = db.query(
        "SELECT prcd, prval FROM dms.dms_params WHERE prtyp = $1", [PARAMS_TYPE]
    )
    by_env = {s.env: s.name for s in SETTINGS.values() if s.env}
    return {by_env[r["prcd"]]: r["prval"] for r in rows if r["prcd"] in by_env}


def env_layer(environ: Mapping[str, str]) -> dict[str, str]:
    return {s.name: environ[s.env] for s in SETTINGS.values() if s.env and s.env in environ}


def check_keys(params: Mapping[str, Any], origin: str = "p_params") -> None:
    for key in params:
        if key not in SETTINGS:
            close = difflib.get_close_matches(key, list(SETTINGS), n=1)
            raise DmsError(
                f'unknown parameter "{key}" in {origin}'
                + (f'; did you mean "{close[0]}"?' if close else ""),
                sqlstate=INVALID_PARAMETER_VALUE,
                detail="known parameters: " + ", ".join(sorted(SETTINGS)),
                hint=f"remove or correct the key in {origin}",
            )


def resolve(
    layers: list[tuple[str, Mapping[str, Any]]],
) -> EngineConfig:
    """Merge ``(origin, values)`` layers over the defaults, validating each value."""
    values: dict[str, Any] = {name: s.default for name, s in SETTINGS.items()}
    origins: dict[str, str] = {name: "default" for name in SETTINGS}
    for origin, layer in layers:
        for name, raw in layer.items():
            if raw is None and origin == "arguments":
                continue  # a Python keyword left at None means "not given"
            setting = SETTINGS[name]
            values[name] = _convert(setting, raw, origin)
            origins[name] = origin
    return EngineConfig(values, origins)
