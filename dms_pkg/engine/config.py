"""Engine settings, resolved in layers (DESIGN §5; later wins):

built-in defaults -> DMS_PARAMS rows (PRTYP 'PARALLEL', PRCD = the
environment name) -> environment variables -> job parameters -> the call's
own arguments (``p_params`` / Python keyword arguments).

Every value is checked against its type and range, and a bad one is refused
with a message naming the setting, where it came from, and the allowed
range.  DMS_PARAMS and environment variables are text by nature and are
parsed (``"4"``, ``"true"``); values from ``p_params`` or Python arguments
already have a type and must have the setting's own: ``{"max_workers": "4"}``
is refused rather than guessed at, since a quoted number there is usually a
template or a script gone wrong.  An unknown key in ``p_params`` is refused too (a typo must not be
silently ignored on a nightly load).  The effective settings are recorded on
the run, each with its origin, so "why did it use 2 workers?" has an answer.
"""

from __future__ import annotations

import difflib
import json
import math
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
                choices=("auto", "key_range", "quantile", "ctid", "rowid", "hash", "offset",
                         "single"),
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
        Setting("mysql_consistency", str, "lock", choices=("lock", "none"),
                help="MariaDB/MySQL sources read by several workers: lock (a brief FLUSH "
                "TABLES WITH READ LOCK, or LOCK TABLES ... READ, while every worker starts "
                "its snapshot) or none (each worker its own moment)"),
        Setting("mysql_zero_dates", str, "error", choices=("error", "null"),
                help="MariaDB/MySQL zero dates (0000-00-00): refuse the chunk naming the "
                "column, or load them as NULL"),
        Setting("mysql_reader", str, "auto", choices=("auto", "client", "pymysql"),
                help="who reads a MariaDB/MySQL source: the mariadb client (no per-row "
                "Python; auto uses it when installed) or pymysql"),
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

    def record_planned(self, name: str, value: Any) -> None:
        """Add a value that planning found, not a setting a caller may give (the
        point in time the chunks were measured at): recorded on the run with
        the others, origin "planning", and handed to the source's backend."""
        if name in SETTINGS:
            raise ValueError(f"{name} is a setting, not a value planning finds")
        self.values[name] = value
        self.origins[name] = "planning"


_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}

# Layers whose values are text by nature and are parsed; every other layer
# (p_params, Python arguments) carries typed values that must match.
TEXT_LAYERS = frozenset({"DMS_PARAMS", "environment"})


def json_type(value: Any) -> str:
    """The JSON name of a value's type, with its article: "a string", "an object"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


def _expected_type(setting: Setting) -> str:
    if setting.kind is bool:
        return "a boolean"
    if setting.kind in (int, float):
        return "a number"
    if setting.kind is dict:
        return "an object"
    return "a string"


def _type_error(setting: Setting, raw: Any, origin: str) -> DmsError:
    expected = _expected_type(setting)
    shown = json.dumps(raw, default=str)
    if expected == "a boolean":
        fix = f"write {setting.name} as true or false, without quotes"
    elif expected == "a number":
        example = json.dumps({setting.name: setting.default or 1})
        fix = f"write the number without quotes, for example {example}"
    elif expected == "an object":
        fix = f"write {setting.name} as a JSON object, not as a string holding one"
    else:
        fix = f"write {setting.name} as a string, in double quotes"
    ranged = bool(setting.choices) or setting.low is not None or setting.high is not None
    allowed = f" ({setting.describe_range()})" if ranged else ""
    return DmsError(
        f"{setting.name} must be {expected}{allowed}, got {shown}, {json_type(raw)} "
        f"(from {origin})",
        sqlstate=INVALID_PARAMETER_VALUE,
        hint=fix,
    )


def _check_type(setting: Setting, raw: Any, origin: str) -> None:
    """A typed layer's value must have the setting's JSON type (ints are numbers)."""
    if setting.kind is bool:
        ok = isinstance(raw, bool)
    elif setting.kind in (int, float):
        ok = isinstance(raw, int | float) and not isinstance(raw, bool)
    elif setting.kind is dict:
        ok = isinstance(raw, Mapping)
    else:
        ok = isinstance(raw, str)
    if not ok:
        raise _type_error(setting, raw, origin)


def _convert(setting: Setting, raw: Any, origin: str) -> Any:
    def bad(reason: str = "") -> DmsError:
        return DmsError(
            f"{setting.name} must be {setting.describe_range()}, got {raw!r} (from {origin})"
            + (f": {reason}" if reason else ""),
            sqlstate=INVALID_PARAMETER_VALUE,
            hint=f"{setting.name}: {setting.help}" if setting.help else None,
        )

    if raw is not None and origin not in TEXT_LAYERS:
        _check_type(setting, raw, origin)
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
        number: float
        try:
            if setting.kind is float:
                number = float(raw)
            elif isinstance(raw, float) and raw.is_integer():
                number = int(raw)  # JSON has one number type: 4.0 is 4
            else:
                number = int(str(raw).strip())
        except ValueError:
            raise bad() from None
        if not math.isfinite(number):  # NaN passes every comparison below
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


def effective(db: Database, params: Mapping[str, Any], environ: Mapping[str, str]
              ) -> EngineConfig:
    """A run's settings: the defaults under DMS_PARAMS, the environment and
    ``p_params``, in that order (a later layer wins)."""
    check_keys(params)
    return resolve([
        ("DMS_PARAMS", dms_params_layer(db)),
        ("environment", env_layer(environ)),
        ("p_params", params),
    ])


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


def parse_params(p_params: Any) -> dict[str, Any]:
    """An entry's p_params (JSON text or an already parsed value) as a dict."""
    if p_params is None:
        return {}
    value = json.loads(p_params) if isinstance(p_params, str) else p_params
    if not isinstance(value, dict):
        raise DmsError(
            f"p_params must be a JSON object, got {type(value).__name__}",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="""for example p_params => '{"max_workers": 4}'""",
        )
    return value
