"""``dms.schema_diff``, ``dms.compare_tables`` and ``dms.profile_tables``: the checks from SQL.

The same work as ``dms schema-diff`` / ``table-compare`` / ``profile``, run
inside the server (pg_cron can call it), with sides named by connection:
``[connection.][schema.]table`` where ``connection`` is a CONNM (or CONID)
of DMS_DBCONDTLS, and no connection means this database.  A connection is
used only as the engine uses it: granted to the caller (DMS_DBCONUSR), its
secret from PWDSRC, this database reached as the caller's own login.  The
results go to DMS tables through definer functions; the call returns their
id and says the summary in a NOTICE.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dms_pkg.backends.base import backend_for
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.db.sources import SourceConnection
from dms_pkg.engine import connections
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError
from dms_pkg.jobs.schema_diff.pairs import DEFAULT_DB, Pair, Side, parse_pair, parse_side
from dms_pkg.security import OPERATOR, require_role


class _Server:
    def __init__(self, plpy: Any) -> None:
        self.plpy = plpy
        self.db = PlpyDatabase(plpy)
        require_role(self.db, OPERATOR)
        self.local = str(self.db.query("SELECT dms.loopback_conninfo() AS c")[0]["c"])
        rows = self.db.query("SELECT conid, connm FROM dms.dms_dbcondtls WHERE curflg = 'Y'")
        self.conids: dict[str, int] = {}
        for row in rows:
            self.conids[str(row["connm"])] = int(row["conid"])
            self.conids[str(row["conid"])] = int(row["conid"])
        self.endpoints: dict[str, Endpoint] = {}

    @property
    def names(self) -> dict[str, str]:
        return {name: name for name in self.conids}

    def resolve(self, sides: list[Side]) -> None:
        """Every side's connection, checked here, in the backend's own thread
        (the work below runs on threads that may not use plpy)."""
        for side in sides:
            if side.db not in self.endpoints:
                conid = None if side.db == DEFAULT_DB else self.conids[side.db]
                self.endpoints[side.db] = connections.resolve(self.db, conid, self.local,
                                                              "source")

    @contextmanager
    def open(self, side: Side) -> Iterator[SourceConnection]:
        endpoint = self.endpoints[side.db]
        with backend_for(endpoint.dbtyp).planning(endpoint) as planning:
            yield planning.planner


def _params(p_params: Any) -> dict[str, Any]:
    if p_params is None:
        return {}
    value = json.loads(p_params) if isinstance(p_params, str) else p_params
    if not isinstance(value, dict):
        raise DmsError("p_params must be a JSON object", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="""for example '{"parallel": 2}'""")
    return value


def _parallel(params: dict[str, Any]) -> int:
    value = params.get("parallel", 2)
    if not isinstance(value, int) or not 1 <= value <= 16:
        raise DmsError(f"parallel must be from 1 to 16, not {value}",
                       sqlstate=INVALID_PARAMETER_VALUE, hint="""'{"parallel": 2}'""")
    return value


def _pairs(server: _Server, texts: list[str] | None) -> tuple[list[Pair | None], list[str]]:
    if not texts:
        raise DmsError("no pairs given", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="ARRAY['public.orders:shop.orders'] (connection.schema.table)")
    pairs: list[Pair | None] = []
    errors: list[str] = []
    for text in texts:
        try:
            pairs.append(parse_pair(text, server.names))
            errors.append("")
        except DmsError as exc:
            pairs.append(None)
            errors.append(exc.message)
    return pairs, errors


def _record(server: _Server, kind: str, started: datetime.datetime,
            results: list[dict[str, Any]]) -> int:
    body = {"started_at": started.isoformat(),
            "ended_at": datetime.datetime.now(datetime.UTC).isoformat(), "results": results}
    check_id = int(server.db.query("SELECT dms.record_check($1::text, $2::jsonb) AS id",
                                   [kind, json.dumps(body, default=str)])[0]["id"])
    counts = {s: sum(r["status"] == s for r in results) for s in ("equal", "different", "error")}
    server.plpy.notice(f"{kind} {check_id}: {len(results)} pairs, {counts['equal']} equal, "
                       f"{counts['different']} different, {counts['error']} could not be "
                       f"compared; SELECT * FROM dms.check_result WHERE check_id = {check_id}")
    return check_id


def _refused(text: str, message: str) -> dict[str, Any]:
    return {"pair": text, "status": "error",
            "error": {"sqlstate": INVALID_PARAMETER_VALUE, "message": message, "hint": None}}


def _error_of(exc: BaseException) -> dict[str, Any]:
    from dms_pkg.jobs.schema_diff.batch import _error

    return _error(exc)


def schema_diff(plpy: Any, p_pairs: list[str] | None, p_params: Any) -> int:
    from dms_pkg.jobs.schema_diff import batch

    server = _Server(plpy)
    params = _params(p_params)
    started = datetime.datetime.now(datetime.UTC)
    pairs, errors = _pairs(server, p_pairs)
    refused: dict[int, dict[str, Any]] = {}
    for n, (pair, text, error) in enumerate(zip(pairs, p_pairs or [], errors, strict=True)):
        if pair is None:
            refused[n] = _refused(text, error)
            continue
        try:
            server.resolve([pair.a, pair.b])  # here: the threads below may not use plpy
        except Exception as exc:  # a connection the caller may not use fails its pair only
            refused[n] = {"pair": pair.text, "a": pair.a.label, "b": pair.b.label,
                          "status": "error", "error": _error_of(exc)}
    good = [p for n, p in enumerate(pairs) if n not in refused and p is not None]
    done = iter(batch.run(good, server.open, parallel=_parallel(params)))
    results = [refused[n] if n in refused else next(done).as_json() for n in range(len(pairs))]
    return _record(server, "schema-diff", started, results)


def compare_tables(plpy: Any, p_pairs: list[str] | None, p_params: Any) -> int:
    from dms_pkg.jobs.compare.command import compare_pair

    server = _Server(plpy)
    params = _params(p_params)
    key = params.get("key")
    keys = [k.strip() for k in key.split(",")] if isinstance(key, str) else key
    limit = params.get("limit")
    started = datetime.datetime.now(datetime.UTC)
    pairs, errors = _pairs(server, p_pairs)
    results = []
    for pair, text, error in zip(pairs, p_pairs or [], errors, strict=True):
        if pair is None:
            results.append(_refused(text, error))
            continue
        body: dict[str, Any] = {"pair": pair.text, "a": pair.a.label, "b": pair.b.label,
                                "status": "error", "error": None}
        try:
            server.resolve([pair.a, pair.b])
            body.update(compare_pair(pair, server.open, keys, _parallel(params), limit))
        except Exception as exc:  # the pair's failure is its result; the others go on
            body["error"] = _error_of(exc)
        results.append(body)
    return _record(server, "table-compare", started, results)


def profile_tables(plpy: Any, p_tables: list[str] | None, p_params: Any) -> int:
    from dms_pkg.jobs.profile import batch

    server = _Server(plpy)
    params = _params(p_params)
    if not p_tables:
        raise DmsError("no tables given", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="ARRAY['public.orders', 'shop.orders'] (connection.schema.table)")
    sides = [parse_side(t, server.names) for t in p_tables]
    started = datetime.datetime.now(datetime.UTC)
    refused: dict[int, batch.TableProfile] = {}
    for n, side in enumerate(sides):
        try:
            server.resolve([side])
        except Exception as exc:  # a connection the caller may not use fails its table only
            refused[n] = batch.TableProfile(side, error=_error_of(exc))
    done = iter(batch.run([s for n, s in enumerate(sides) if n not in refused], server.open,
                          parallel=_parallel(params)))
    results = [refused[n] if n in refused else next(done) for n in range(len(sides))]
    body = {"started_at": started.isoformat(),
            "ended_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "tables": [r.as_json() for r in results]}
    profile_id = int(server.db.query("SELECT dms.record_profile($1::jsonb) AS id",
                                     [json.dumps(body, default=str)])[0]["id"])
    failed = sum(1 for r in results if r.error)
    plpy.notice(f"profile {profile_id}: {len(results)} tables, {failed} failed; "
                f"SELECT * FROM dms.profile_column WHERE profile_id = {profile_id}")
    return profile_id
