"""Set-based loading of a chunk: stage it, then merge it into the target with SQL.

A chunk's rows go into a session temp table (``pg_temp.dms_stage``: the
target's types, no WAL, no indexes) and a few statements move them into the
target -- in the same transaction as the chunk's ledger row, so a chunk is
merged exactly once.  Nothing is looked up row by row.

* ``append`` (NRM, FCT, MRT tables): insert every staged row; with
  ``only_new``, only the rows whose business key the target does not hold,
  and a key staged twice is refused as in ``scd``.
* ``scd`` (DIM tables), per business key, comparing the staged row with the
  current version of the target:

  1. a type-2 column changed: the current version is closed (current flag
     'N', valid-to now) ...
  2. only type-1 columns changed (the row hash differs): the current version
     is updated in place;
  3. ... and every staged key without a current version -- new keys and the
     keys closed in step 1 -- gets a new current version.

  Unchanged keys are not touched, nor read again: one pass (``classify``)
  copies the staged rows that are new or differ from their current version
  into a second temp table (``pg_temp.dms_changed``), and statements 1-3 read
  that.  A reload where 10 % of the keys changed then joins the target three
  times with a tenth of the chunk instead of with all of it.  Statements 1-3
  take the smallest and largest first key column of those rows as
  parameters $1 and $2 (``bounds`` reads them), so PostgreSQL plans each
  with the target's real key slice; nothing classified, nothing to run.  A key staged
  twice is refused (the merge would be ambiguous); chunks are cut on the
  business key, so a key is never split over two chunks.

A first load -- the target was empty when the run was planned, and a unique
index on the business key refuses a key twice (``guard_of``) -- may skip the
stage: the plan's ``direct`` statement inserts the chunk query's rows straight
into the target, computed as the ``inserted`` statement computes a new key
(``direct``).  A key the guard refuses (the source returns it twice, or
somebody else inserted it meanwhile) sends that chunk through the stage after
all, so the outcome is the staged path's.

A same-database scd chunk skips the stage too (``fused``): one statement reads
the chunk query into a materialized CTE, asks it the check's question and
classifies it; the statements 1-3 follow as above.

Column names are target column names; identifiers are quoted by psycopg.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from dms_pkg.db.base import Database
from dms_pkg.errors import INVALID_PARAMETER_VALUE, UNDEFINED_COLUMN, DmsError

STAGE = "dms_stage"
CHANGED = "dms_changed"  # the staged rows an scd merge has something to do for
ROWS_FILTER = "/*dms_rows*/TRUE"  # replaced by a row-number range while finding bad rows
CHUNK = "/*dms_chunk*/"  # where the direct statement takes the chunk query
CARDINALITY_VIOLATION = "21000"
FUSED_WORK_MEM_KB = 65536  # work_mem of a fused chunk's transaction, at least (movers)
CACHED_PAGE_COST = 1.1  # random_page_cost of an scd chunk's statements 1-3, at most


@dataclass(frozen=True)
class MergeSpec:
    kind: str  # "append" or "scd"
    keys: tuple[str, ...] = ()
    scd2: tuple[str, ...] = ()
    scd1: tuple[str, ...] = ()
    hash_column: str | None = None
    created_column: str | None = None
    updated_column: str | None = None
    current_column: str | None = None  # 'Y' / 'N'
    valid_from_column: str | None = None
    valid_to_column: str | None = None
    carry: tuple[str, ...] = ()  # target columns another load fills: kept across versions
    # Versions whose valid-from is at or after this time were made by the
    # current job (an earlier combination of the same mapping run): a change
    # updates them in place, so one job run makes at most one version per key.
    since: str | None = None
    # append: insert only rows whose key the target does not hold yet, so a
    # load run again after a partial failure adds what is missing, nothing twice.
    only_new: bool = False

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> MergeSpec:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(value) - known)
        if unknown:
            raise DmsError(
                f'unknown key "{unknown[0]}" in merge',
                sqlstate=INVALID_PARAMETER_VALUE,
                detail="known keys: " + ", ".join(sorted(known)),
            )
        kind = value.get("kind")
        if kind not in ("append", "scd"):
            raise DmsError(f"merge kind must be append or scd, got {kind!r}",
                           sqlstate=INVALID_PARAMETER_VALUE)
        def names(key: str) -> tuple[str, ...]:
            return tuple(str(v) for v in value.get(key) or ())

        def name(key: str) -> str | None:
            return str(value[key]) if value.get(key) else None

        spec = cls(str(kind), names("keys"), names("scd2"), names("scd1"), name("hash_column"),
                   name("created_column"), name("updated_column"), name("current_column"),
                   name("valid_from_column"), name("valid_to_column"), names("carry"),
                   name("since"), bool(value.get("only_new")))
        if spec.only_new and not spec.keys:
            raise DmsError("merge only_new needs the business key columns (keys)",
                           sqlstate=INVALID_PARAMETER_VALUE)
        if spec.since and not spec.valid_from_column:
            raise DmsError("merge since needs valid_from_column (it compares version starts)",
                           sqlstate=INVALID_PARAMETER_VALUE)
        if spec.kind == "scd" and not spec.keys:
            raise DmsError("merge kind scd needs the business key columns (keys)",
                           sqlstate=INVALID_PARAMETER_VALUE)
        if spec.kind == "scd" and not spec.current_column:
            raise DmsError("merge kind scd needs current_column (the current-version flag)",
                           sqlstate=INVALID_PARAMETER_VALUE)
        return spec

    def as_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    def managed(self) -> list[str]:
        """Target columns the merge fills itself (not loaded from the source)."""
        return [c for c in (self.hash_column, self.created_column, self.updated_column,
                            self.current_column, self.valid_from_column, self.valid_to_column,
                            *self.carry) if c]


@dataclass
class MergePlan:
    """The statements a worker runs for every chunk, in order."""

    prepare: list[str]  # create the stage (idempotent)
    check: str | None  # refuses a key staged twice
    statements: list[tuple[str, str]] = field(default_factory=list)  # (count label, SQL)
    # A first load (the target was empty at planning): the chunk query's rows
    # inserted straight into the target (``CHUNK`` marks where the chunk query
    # goes), no stage; ``guard`` is the unique index that refuses a key twice.
    direct: str | None = None
    guard: str | None = None
    # Run after the check and before the statements (which read what it
    # keeps): the staged rows the statements can act on (scd: ``CHANGED``).
    classify: list[str] = field(default_factory=list)
    # Run after classify: one row, the statements' $1 and $2 as text and the
    # rows classified.  None: the statements take no parameters.
    bounds: str | None = None
    # A same-database scd merge: the stage, the check, classify and bounds in
    # one statement that reads the chunk query (``CHUNK``) once (``fused``).
    fused: str | None = None

    def as_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {"prepare": self.prepare, "check": self.check,
                                 "statements": [list(s) for s in self.statements]}
        if self.direct:
            value.update(direct=self.direct, guard=self.guard)
        if self.classify:
            value["classify"] = self.classify
        if self.bounds:
            value["bounds"] = self.bounds
        if self.fused:
            value["fused"] = self.fused
        return value

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> MergePlan:
        # A run planned before ``classify`` existed has none: its statements
        # read the stage itself; one planned before ``bounds`` bounds the key
        # slice with subqueries.
        return cls(list(value["prepare"]), value.get("check"),
                   [(str(a), str(b)) for a, b in value["statements"]],
                   value.get("direct") or None, value.get("guard") or None,
                   [str(s) for s in value.get("classify") or ()],
                   value.get("bounds") or None, value.get("fused") or None)


def _q(composable: sql.Composable) -> str:
    return composable.as_string(None)


def _ids(names: Sequence[str], prefix: str | None = None) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.Identifier(prefix, n) if prefix else sql.Identifier(n) for n in names)


def check_spec(spec: MergeSpec, loaded: Sequence[str], target_columns: Sequence[str],
               target_name: str) -> None:
    """The merge's columns must exist: keys and SCD columns among the loaded ones,
    the managed ones in the target."""
    for column in spec.keys + spec.scd2 + spec.scd1:
        if column not in loaded:
            raise DmsError(
                f'merge column "{column}" is not among the columns the source query returns',
                sqlstate=UNDEFINED_COLUMN, detail="the source returns: " + ", ".join(loaded))
    for column in [*spec.managed(), *spec.carry]:
        if column not in target_columns:
            raise DmsError(f'merge column "{column}" does not exist in target {target_name}',
                           sqlstate=UNDEFINED_COLUMN)


def plan(spec: MergeSpec, schema: str, table: str, loaded: Sequence[str],
         types: dict[str, str]) -> MergePlan:
    """The stage's DDL and the merge statements for loaded columns ``loaded``."""
    target = sql.Identifier(schema, table)
    stage = sql.Identifier("pg_temp", STAGE)
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(types[c])) for c in loaded)
    # ON COMMIT DELETE ROWS: a worker's connection keeps one stage for all its
    # chunks; a chunk that fails takes its stage rows with its rollback.
    prepare = [_q(sql.SQL(
        "CREATE TEMP TABLE IF NOT EXISTS {} ({}, dms_rn bigint GENERATED ALWAYS AS IDENTITY)"
        " ON COMMIT DELETE ROWS").format(sql.Identifier(STAGE), columns))]
    if spec.kind == "append":
        # only_new makes the business key the row's identity: two staged rows
        # with one key would both be inserted now, and a later load of that key
        # would insert neither -- refused, as the scd merge refuses it.
        return MergePlan(prepare, _twice(spec, stage, types) if spec.only_new else None,
                         [_append(spec, target, stage, loaded)])
    return _scd(spec, target, stage, loaded, types, prepare)


# Key types with a btree operator class, as the stage spells them.
_SORTABLE = re.compile(r"(smallint|integer|bigint|numeric|real|double precision|text"
                       r"|character( varying)?|date|time(stamp)?|uuid|boolean|bytea|interval)"
                       r"(\(\d+(,\d+)?\))?( with(out)? time zone)?")


def _twice(spec: MergeSpec, stage: sql.Identifier, types: dict[str, str]) -> str:
    """The first business key staged more than once, if any.

    For a one-column key of a sortable type the grouping runs only when a
    count says some key repeats (as GROUP BY sees it, two NULLs included):
    over a 97K-row chunk the counts' sort took 12-16 ms, grouping every key
    65 ms, which a chunk without a key twice then no longer pays."""
    keys = _ids(spec.keys, "s")
    gate: sql.Composable = _NOTHING
    if len(spec.keys) == 1 and _SORTABLE.fullmatch(types.get(spec.keys[0], "")):
        key = sql.Identifier("d", spec.keys[0])
        gate = sql.SQL(" WHERE (SELECT count({k}) <> count(DISTINCT {k}) OR count(*) - count({k})"
                       " > 1 FROM {stage} AS d)").format(k=key, stage=stage)
    return _q(sql.SQL("SELECT {} FROM {} AS s{} GROUP BY {} HAVING count(*) > 1 LIMIT 1").format(
        keys, stage, gate, keys))


_NOW = sql.SQL("pg_catalog.transaction_timestamp()")
_STAGE_RN = sql.SQL("s.dms_rn")
_NOTHING = sql.SQL("")
_ROWS = sql.SQL(ROWS_FILTER)


def _row_hash(values: Sequence[sql.Composable]) -> sql.Composable:
    return sql.SQL("pg_catalog.md5(ROW({})::text)").format(sql.SQL(", ").join(values))


def _append(spec: MergeSpec, target: sql.Identifier, stage: sql.Identifier,
            loaded: Sequence[str]) -> tuple[str, str]:
    columns = list(loaded)
    values: list[sql.Composable] = [sql.Identifier("s", c) for c in loaded]
    value_columns = [c for c in loaded if c not in spec.keys]
    for column, value in ((spec.hash_column,
                           _row_hash([sql.Identifier("s", c) for c in value_columns])),
                          (spec.created_column, _NOW), (spec.updated_column, _NOW)):
        if column:
            columns.append(column)
            values.append(value)
    absent: sql.Composable = sql.SQL("")
    if spec.only_new:
        absent = sql.SQL(" AND NOT EXISTS (SELECT FROM {} AS t WHERE {} AND {})").format(
            target, _key_match(spec), _key_slice(spec, stage))
    return ("inserted", _q(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} AS s WHERE {}{}")
                           .format(target, _ids(columns), sql.SQL(", ").join(values), stage,
                                   _ROWS, absent)))


def _key_match(spec: MergeSpec) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("t.{} = s.{}").format(sql.Identifier(k), sql.Identifier(k)) for k in spec.keys)


def _key_slice(spec: MergeSpec, stage: sql.Identifier) -> sql.Composable:
    """Chunks are cut on the business key, so the target rows a chunk can touch
    lie between its smallest and largest first key column: saying so lets the
    planner read that slice through the key index instead of hashing every
    row of the target for each statement of each chunk."""
    return sql.SQL(
        "t.{k} >= (SELECT min(r.{k}) FROM {stage} AS r)"
        " AND t.{k} <= (SELECT max(r.{k}) FROM {stage} AS r)").format(
            k=sql.Identifier(spec.keys[0]), stage=stage)


def _given_slice(spec: MergeSpec, key_type: str) -> sql.Composable:
    """The key slice of ``_key_slice`` with its bounds given as parameters $1 and
    $2 (text, cast to the key's type).  Two subqueries are values PostgreSQL
    learns only while it runs the statement: it estimated the slice at a
    fraction of its size and hashed all of it for every statement; given the
    values it plans the slice the chunk really has."""
    return sql.SQL("t.{k} >= CAST($1 AS {t}) AND t.{k} <= CAST($2 AS {t})").format(
        k=sql.Identifier(spec.keys[0]), t=sql.SQL(key_type))


def _bounds(spec: MergeSpec, candidates: sql.Identifier) -> str:
    """The values of ``_given_slice``, as text (exact for every type, and read
    back by the same session's input function), and how many rows there are
    (the bounds are NULL as well when every key is NULL)."""
    return _q(sql.SQL(
        "SELECT min(r.{k})::text, max(r.{k})::text, count(*) FROM {c} AS r").format(
            k=sql.Identifier(spec.keys[0]), c=candidates))


def _scd(spec: MergeSpec, target: sql.Identifier, stage: sql.Identifier,
         loaded: Sequence[str], types: dict[str, str], prepare: list[str]) -> MergePlan:
    """Statements 1-3 of the module docstring.

    ``carry`` columns belong to the row but not to this load (another
    combination of a mapping fills them): they count in the row hash, and a
    new version takes them over from the version it replaces.  A *fresh*
    current version -- one the same job run made (valid-from at or after
    ``since``: an earlier combination inserted the key, or versioned it) -- is
    completed in place, not replaced: a job run makes at most one new version
    per key, whatever its combinations change.  Any other version is
    versioned on an SCD2 change, including one whose loaded columns are all
    NULL (the combination's source lacked the key): a value arriving there
    is a change like any other, and the version that lacked it stays history.
    """
    assert spec.current_column is not None
    value = [c for c in loaded if c not in spec.keys]
    key_match = _key_match(spec)
    # The statements read the classified rows (``_classify``), not the whole stage.
    candidates = sql.Identifier("pg_temp", CHANGED)
    current = sql.SQL("t.{} = 'Y' AND {}").format(sql.Identifier(spec.current_column),
                                                  _given_slice(spec, types[spec.keys[0]]))
    since = sql.SQL("{}::timestamptz").format(sql.Literal(spec.since))
    is_fresh: sql.Composable = sql.SQL("false")
    if spec.since and spec.valid_from_column:
        is_fresh = sql.SQL("coalesce(t.{} >= {}, false)").format(
            sql.Identifier(spec.valid_from_column), since)
    # A version an earlier combination of this job run updated in place: a
    # further update is counted with that one (a row written once), not again.
    touched: sql.Composable = is_fresh
    if spec.since and spec.updated_column:
        touched = sql.SQL("({} OR coalesce(t.{} >= {}, false))").format(
            is_fresh, sql.Identifier(spec.updated_column), since)
    # One column order for the row hash, whichever combination computes it.
    every = sorted({*value, *spec.carry})
    new_hash = _row_hash([sql.Identifier("s" if c in value else "t", c) for c in every])
    check = _twice(spec, stage, types)
    statements: list[tuple[str, str]] = []
    if spec.scd2:
        closing = [sql.SQL("{} = 'N'").format(sql.Identifier(spec.current_column))]
        for column in (spec.valid_to_column, spec.updated_column):
            if column:
                closing.append(sql.SQL("{} = {}").format(sql.Identifier(column), _NOW))
        statements.append(("expired", _q(sql.SQL(
            "UPDATE {} AS t SET {} FROM {} AS s WHERE {} AND {} AND {}"
            " AND ({}) IS DISTINCT FROM ({}) AND NOT {}").format(
                target, sql.SQL(", ").join(closing), candidates, key_match, current, _ROWS,
                _ids(spec.scd2, "t"), _ids(spec.scd2, "s"), is_fresh))))
    if value:
        sets = [sql.SQL("{} = s.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in value]
        if spec.hash_column:
            sets.append(sql.SQL("{} = {}").format(sql.Identifier(spec.hash_column), new_hash))
        # Changed = a loaded column differs.  Comparing the columns costs less
        # than hashing every staged row, and does not depend on the stored
        # hash being current.
        changed = sql.SQL("({}) IS DISTINCT FROM ({})").format(
            _ids(value, "t"), _ids(value, "s"))
        if spec.updated_column:
            sets.append(sql.SQL("{} = {}").format(sql.Identifier(spec.updated_column), _NOW))
        update = sql.SQL("UPDATE {} AS t SET {} FROM {} AS s WHERE {} AND {} AND {} AND {}").format(
            target, sql.SQL(", ").join(sets), candidates, key_match, current, _ROWS, changed)
        # Completing a version this job run wrote already is counted apart:
        # the job log counts each row the run wrote once.
        statements.append(("updated", _q(sql.SQL("{} AND NOT {}").format(update, touched))))
        if spec.since:
            statements.append(("completed", _q(sql.SQL("{} AND {}").format(update, touched))))

    columns = list(loaded) + list(spec.carry)
    values: list[sql.Composable] = [sql.Identifier("s", c) for c in loaded]
    values += [sql.Identifier("p", c) for c in spec.carry]
    in_row = {c: "s" if c in value else "p" for c in every}
    for column, expr in ((spec.hash_column, _row_hash(
            [sql.Identifier(in_row[c], c) for c in every])),
            (spec.created_column, _NOW), (spec.updated_column, _NOW),
            (spec.current_column, sql.SQL("'Y'")), (spec.valid_from_column, _NOW)):
        if column:
            columns.append(column)
            values.append(expr)
    previous: sql.Composable = sql.SQL("")
    if spec.carry:
        # The version this one replaces: the latest closed one, if any.
        order = sql.Identifier(spec.valid_to_column or spec.updated_column or spec.keys[0])
        previous = sql.SQL(
            " LEFT JOIN LATERAL (SELECT {} FROM {} AS t WHERE {} ORDER BY t.{} DESC NULLS LAST"
            " LIMIT 1) AS p ON true").format(
                _ids(spec.carry, "t"), target, key_match, order)
    statements.append(("inserted", _q(sql.SQL(
        "INSERT INTO {} ({}) SELECT {} FROM {} AS s{} WHERE {} AND NOT EXISTS"
        " (SELECT FROM {} AS t WHERE {} AND {})").format(
            target, _ids(columns), sql.SQL(", ").join(values), candidates, previous, _ROWS,
            target, key_match, current))))
    return MergePlan([*prepare, _changed_table(loaded)], check, statements,
                     classify=[_q(_classify(spec, target, stage, candidates, loaded, value))],
                     bounds=_bounds(spec, candidates))


def _changed_table(loaded: Sequence[str]) -> str:
    """The second temp table: the stage's columns and row numbers, no identity
    (the rows keep their stage numbers, which finding bad rows bisects)."""
    return _q(sql.SQL(
        "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {}, dms_rn FROM {}"
        " WITH NO DATA").format(
            sql.Identifier(CHANGED), _ids(loaded), sql.Identifier("pg_temp", STAGE)))


def _classify(spec: MergeSpec, target: sql.Identifier, stage: sql.Identifier,
              candidates: sql.Identifier, loaded: Sequence[str], value: Sequence[str],
              *, row_number: sql.Composable = _STAGE_RN, also: sql.Composable = _NOTHING,
              key_slice: sql.Composable | None = None) -> sql.Composable:
    """Keep the staged rows whose key has no current version with the same loaded
    values: new keys and changed ones.  Every statement of ``_scd`` acts only on
    such a row (and checks again what it acts on), so an unchanged key is
    joined with the target once, here, instead of once per statement.

    ``stage`` may be the fused statement's CTE (``row_number`` NULL there);
    ``also``: a further condition, ``... AND``; ``key_slice``: the slice's
    bounds from elsewhere than two subqueries over ``stage`` (``_key_slice``)."""
    assert spec.current_column is not None
    same: sql.Composable = sql.SQL("")
    if value:
        same = sql.SQL(" AND ({}) IS NOT DISTINCT FROM ({})").format(
            _ids(value, "t"), _ids(value, "s"))
    return sql.SQL(
        "INSERT INTO {} SELECT {}, {} FROM {} AS s WHERE {}NOT EXISTS"
        " (SELECT FROM {} AS t WHERE {} AND t.{} = 'Y' AND {}{})").format(
            candidates, _ids(loaded, "s"), row_number, stage, also, target, _key_match(spec),
            sql.Identifier(spec.current_column),
            _key_slice(spec, stage) if key_slice is None else key_slice, same)


def fused(spec: MergeSpec, schema: str, table: str, loaded: Sequence[str],
          types: dict[str, str]) -> str:
    """A same-database scd chunk's stage, check, classify and bounds as one statement.

    The chunk query's rows, in the stage's types (as ``direct`` casts them),
    are kept in a materialized CTE instead of the stage table; the key twice
    (``_twice``'s question) and the classification read that.  A key the source
    returns twice classifies nothing, and the one row the statement returns
    says so -- ``rows read, twice?, the key's columns, bounds (min, max, count)
    of the rows kept`` -- so the worker refuses the chunk as the check does.
    On the benchmark's reloads (97K-row chunks, the transaction's work_mem
    raised, see ``Mover._fused``): 447-536 ms a chunk against 543-678 ms
    staged.  Finding the rows a target refuses still stages the chunk (the
    bisection needs row numbers).
    """
    assert spec.kind == "scd" and spec.keys
    target = sql.Identifier(schema, table)
    rows = sql.Identifier("s")
    value = [c for c in loaded if c not in spec.keys]
    first = sql.Identifier(spec.keys[0])
    # The rows read and the key slice's bounds in one pass over the CTE
    # (``span``), not three: 12-14 ms a pass over a 97K-row chunk.
    span = sql.Identifier("span")
    classify = _classify(spec, target, rows, sql.Identifier("pg_temp", CHANGED), loaded, value,
                         row_number=sql.NULL,
                         also=sql.SQL("NOT EXISTS (SELECT FROM {}) AND ").format(
                             sql.Identifier("twice")),
                         key_slice=sql.SQL("t.{k} >= (SELECT lo FROM {span}) AND t.{k} <="
                                           " (SELECT hi FROM {span})").format(k=first, span=span))
    return _q(sql.SQL(
        "WITH {rows} AS MATERIALIZED (SELECT {typed} FROM ({chunk}) AS q ({loaded})),"
        " {span} AS MATERIALIZED (SELECT min({first}) AS lo, max({first}) AS hi, count(*) AS n"
        " FROM {rows}),"
        " {twice_name} AS ({twice}), {kept} AS ({classify} RETURNING {first})"
        " SELECT (SELECT n FROM {span}), EXISTS (SELECT FROM {twice_name}), {keys},"
        " (SELECT min({first})::text FROM {kept}), (SELECT max({first})::text FROM {kept}),"
        " (SELECT count(*) FROM {kept})"
        " FROM (SELECT) AS one LEFT JOIN {twice_name} ON true").format(
            rows=rows, typed=_typed(loaded, types), chunk=sql.SQL(CHUNK), loaded=_ids(loaded),
            span=span, twice_name=sql.Identifier("twice"),
            twice=sql.SQL(_twice(spec, rows, types)), kept=sql.Identifier("kept"),
            classify=classify, first=first, keys=_ids(spec.keys, "twice")))


def offers_direct(spec: MergeSpec) -> bool:
    """Merges a first load may run without the stage: every staged row of an
    empty target is inserted, and a unique index can stand in for the check."""
    return bool(spec.keys) and (spec.kind == "scd" or spec.only_new)


def direct(spec: MergeSpec, schema: str, table: str, loaded: Sequence[str],
           types: dict[str, str]) -> str:
    """The statement that inserts a chunk into the empty target without the stage.

    Row for row what the staged path writes for a key the target does not
    hold: the chunk query's columns take the stage's types first (the row
    hash reads their text), carried columns are NULL (a new key has no
    version to take them from), the managed columns as ``inserted`` sets them.
    The chunk query goes where ``CHUNK`` stands; no row check -- the guarding
    unique index refuses a key twice.
    """
    assert offers_direct(spec)
    target = sql.Identifier(schema, table)
    value = [c for c in loaded if c not in spec.keys]
    columns = list(loaded)
    values: list[sql.Composable] = [sql.Identifier("s", c) for c in loaded]
    managed: list[tuple[str | None, sql.Composable]]
    if spec.kind == "scd":
        every = sorted({*value, *spec.carry})
        columns += spec.carry
        values += [sql.NULL for _ in spec.carry]
        managed = [(spec.hash_column, _row_hash(
                        [sql.Identifier("s", c) if c in value else sql.NULL for c in every])),
                   (spec.created_column, _NOW), (spec.updated_column, _NOW),
                   (spec.current_column, sql.SQL("'Y'")), (spec.valid_from_column, _NOW)]
    else:
        managed = [(spec.hash_column, _row_hash([sql.Identifier("s", c) for c in value])),
                   (spec.created_column, _NOW), (spec.updated_column, _NOW)]
    for column, expr in managed:
        if column:
            columns.append(column)
            values.append(expr)
    return _q(sql.SQL(
        "INSERT INTO {} ({}) SELECT {} FROM (SELECT {} FROM ({}) AS q ({})) AS s").format(
            target, _ids(columns), sql.SQL(", ").join(values), _typed(loaded, types),
            sql.SQL(CHUNK), _ids(loaded)))


def _typed(loaded: Sequence[str], types: dict[str, str]) -> sql.Composable:
    """The chunk query's columns (``q``) in the stage's types: what staging them
    would store, for the statements that read the chunk query itself."""
    return sql.SQL(", ").join(
        sql.SQL("CAST(q.{c} AS {t}) AS {c}").format(c=sql.Identifier(c), t=sql.SQL(types[c]))
        for c in loaded)


def guard_of(session: Database, spec: MergeSpec, schema: str, table: str) -> str | None:
    """The unique index that lets a first load skip the stage, if the target is empty.

    For ``scd``: unique on exactly the business key, over the current versions
    (``WHERE current = 'Y'``) or over all rows; for ``append`` with
    ``only_new``: unique on the key over all rows.  Checked immediately (not
    deferrable), valid, and on NOT NULL key columns only: a unique index lets
    NULL keys repeat, which the stage's check would refuse.  Read as the
    caller from the catalog (a caller who may not read the target is
    staged); None when anything does not fit.
    """
    if not offers_direct(spec):
        return None
    name = _q(sql.Identifier(schema, table))
    rows = session.query(
        "SELECT c.relname AS name, pg_catalog.pg_get_expr(i.indpred, i.indrelid) AS pred,"
        " ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a"
        "       WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
        "       ORDER BY a.attname) AS cols,"
        " (SELECT bool_and(a.attnotnull) FROM pg_catalog.pg_attribute a"
        "  WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) AS notnull"
        " FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_catalog.pg_class r ON r.oid = i.indrelid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
        " WHERE n.nspname = $1::text AND r.relname = $2::text"
        " AND pg_catalog.has_table_privilege(r.oid, 'SELECT')"
        " AND i.indisunique AND i.indisvalid AND i.indimmediate AND i.indexprs IS NULL"
        " AND i.indnatts = $3::int ORDER BY i.indpred IS NULL, c.relname",
        [schema, table, len(spec.keys)])
    current = spec.current_column if spec.kind == "scd" else None
    quoted = _q(sql.Identifier(current)) if current else None
    guard = None
    for row in rows:
        if sorted(row["cols"] or ()) != sorted(spec.keys) or not row["notnull"]:
            continue
        if row["pred"] is None or (quoted is not None
                                   and _is_current(str(row["pred"]), current or "", quoted)):
            guard = str(row["name"])
            break
    if guard is None:
        return None
    empty = session.query(f"SELECT NOT EXISTS (SELECT FROM {name}) AS empty")
    return guard if empty and empty[0]["empty"] else None


def _is_current(predicate: str, column: str, quoted: str) -> bool:
    """``predicate`` (as pg_get_expr shows it) is ``column = 'Y'``."""
    text = predicate.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    left, sep, right = text.partition(" = ")
    if not sep or left not in (column, quoted):
        return False
    return re.fullmatch(r"""'Y'(::("char"|[a-z][a-z ]*))?""", right.strip()) is not None


def restrict(statement: str, lo: int, hi: int) -> str:
    """The statement for staged rows ``lo..hi`` only (finding the rows a target refuses)."""
    return statement.replace(ROWS_FILTER, f"s.dms_rn BETWEEN {int(lo)} AND {int(hi)}")


STAGE_TABLE = _q(sql.Identifier("pg_temp", STAGE))


def stage_target(loaded: Sequence[str]) -> str:
    return _q(sql.SQL("{} ({})").format(sql.Identifier("pg_temp", STAGE), _ids(loaded)))
