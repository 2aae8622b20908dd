"""Per-dialect chunking behaviour, written as class overrides.

Each source database differs in a handful of ways that matter for chunking:
how bind parameters are written, whether row values can be compared
(``(a, b) >= (x, y)``), which hash function buckets a key, which physical row
address exists (PostgreSQL ``ctid``, Oracle ``ROWID``), how to skip rows
without a limit, and which pseudo-columns number rows by read order (Oracle
``ROWNUM``).  Following sqlglot's ``Dialect`` classes, the base class holds the
defaults and every dialect subclass overrides class attributes, extending the
parent's dicts (``{**Parent.X, ...}``) — call sites never branch on a dialect
name.

Bind parameter styles (the choice of each driver we talk to):

* postgres -> ``pyformat`` (``%(name)s``): what psycopg accepts; literal ``%``
  in the query text is doubled on render, as psycopg requires.  PL/Python's
  ``plpy.prepare`` wants ``$1``: ask for ``ParamStyle.NUMERIC`` and pass the
  values in ``params`` order.
* mysql/mariadb -> ``pyformat`` (``%(name)s``): pymysql interpolates client
  side with ``query % args``, so ``%`` is doubled as well.
* oracle -> ``named`` (``:name``): python-oracledb's native style.
* sqlite -> ``named`` (``:name``): supported by the stdlib ``sqlite3`` module.

A dialect may also be defined in its source backend's own modules (SQLite's
is in ``dms_pkg.backends.sqlite_chunking``): lookups load the backends
first, so adding a database touches nothing here.
"""

from __future__ import annotations

from typing import ClassVar

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from dms_pkg.chunking import oracle_sqlglot  # noqa: F401 -- registers the dmsoracle dialect
from dms_pkg.db.binds import ParamStyle as ParamStyle  # re-exported: part of this API
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

# Canonical dialect name -> class; filled by ChunkDialect.__init_subclass__.
_REGISTRY: dict[str, type[ChunkDialect]] = {}


class ChunkDialect:
    """Defaults shared by every source dialect; subclasses override."""

    NAME: ClassVar[str] = ""
    ALIASES: ClassVar[tuple[str, ...]] = ()
    SQLGLOT_DIALECT: ClassVar[str] = ""
    PARAM_STYLE: ClassVar[ParamStyle] = ParamStyle.NAMED

    # Row-value comparison ``(a, b) < (x, y)``; without it composite keys are
    # expanded lexicographically.
    ROW_VALUE_COMPARISON: ClassVar[bool] = True

    # The physical row address a chunk can be cut on, if any.
    ROW_LOCATOR: ClassVar[str | None] = None

    # A hidden integer column every ordinary table has and that can be used as
    # a key range when the user names no key (SQLite's rowid).
    IMPLICIT_ROW_KEY: ClassVar[str | None] = None

    # Unquoted names that number rows by read order (Oracle's ROWNUM).
    ROW_ORDER_PSEUDOCOLUMNS: ClassVar[frozenset[str]] = frozenset()

    # LIMIT value meaning "no limit", for dialects that refuse OFFSET alone.
    OFFSET_WITHOUT_LIMIT: ClassVar[int | None] = None

    # percentile_disc(ARRAY[...]) WITHIN GROUP: all quantiles in one aggregate.
    PERCENTILE_ARRAY: ClassVar[bool] = False

    # Statements every session that reads statistics or chunks must run first,
    # so that ORDER BY (which the bounds come from) and ``<`` (which the
    # predicates use) order text alike.  Empty where both always follow the
    # column's collation.
    SESSION_SETUP: ClassVar[tuple[str, ...]] = ()

    # Strategy -> why this dialect cannot render it.  Extended by subclasses.
    UNSUPPORTED_STRATEGIES: ClassVar[dict[str, str]] = {
        "ctid": "ctid TID ranges exist only in PostgreSQL",
        "rowid": "ROWID extent ranges exist only in Oracle",
    }

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.NAME:
            _REGISTRY[cls.NAME] = cls

    @property
    def sqlglot(self) -> Dialect:
        """The sqlglot dialect instance used to parse and generate."""
        return Dialect.get_or_raise(self.SQLGLOT_DIALECT)

    def normalize(self, identifier: exp.Identifier) -> str:
        """Fold an identifier the way the database does, for comparisons."""
        return self.sqlglot.normalize_identifier(identifier.copy()).name

    def ordered(self, expression: exp.Expr) -> exp.Ordered:
        """Ascending order with the dialect's own NULL placement, so sqlglot
        does not emulate another dialect's NULLS FIRST/LAST."""
        nulls_first = self.sqlglot.NULL_ORDERING == "nulls_are_small"
        return exp.Ordered(this=expression.copy(), desc=False, nulls_first=nulls_first)

    def hash_bucket(self, keys: list[exp.Expr], n: int) -> exp.Expr:
        """``bucket(keys) in [0, n)``; NULL keys land in bucket 0.

        Correctness needs only a deterministic function of the key: the
        bucket is ``COALESCE(MOD(hash, n), 0)`` so a NULL hash (NULL key) goes
        to exactly one bucket.  Subclasses provide ``_hash``.
        """
        raw = self._hash(keys)
        if isinstance(raw, exp.Binary):
            raw = exp.paren(raw, copy=False)
        modded = exp.Mod(this=raw, expression=exp.Literal.number(n))
        return exp.Coalesce(this=modded, expressions=[exp.Literal.number(0)])

    def _hash(self, keys: list[exp.Expr]) -> exp.Expr:
        raise NotImplementedError  # pragma: no cover - guarded by UNSUPPORTED_STRATEGIES

    def sample(self, select: exp.Select, percent: float, params: dict[str, object], *,
               table_sample: bool = True) -> exp.Select:
        """Keep about ``percent`` % of the rows of ``select`` (for key samples).

        The default filters on a per-row random number, which reads the whole
        relation but works on any of them; dialects with row sampling
        override it for base tables (``table_sample``), the only relations
        their TABLESAMPLE/SAMPLE clause accepts.
        """
        params["dms_fraction"] = percent / 100.0
        condition = exp.LT(this=self._random(), expression=exp.Placeholder(this="dms_fraction"))
        return select.where(condition, append=True, copy=False)

    def _random(self) -> exp.Expr:
        return exp.Anonymous(this="RAND")


class Postgres(ChunkDialect):
    NAME = "postgres"
    ALIASES = ("postgresql",)
    SQLGLOT_DIALECT = "postgres"
    PARAM_STYLE = ParamStyle.PYFORMAT
    ROW_LOCATOR = "ctid"
    PERCENTILE_ARRAY = True
    UNSUPPORTED_STRATEGIES: ClassVar[dict[str, str]] = {
        k: v for k, v in ChunkDialect.UNSUPPORTED_STRATEGIES.items() if k != "ctid"
    }

    def _hash(self, keys: list[exp.Expr]) -> exp.Expr:
        # hashtextextended() hashes by the text's collation: values that a
        # nondeterministic collation calls equal hash alike, so a GROUP BY or
        # DISTINCT on the key never sees one group in two buckets.  A composite
        # key chains the parts (each the seed of the next) instead of hashing
        # ROW(...)::text, which would lose every part's collation.
        hashed: exp.Expr = exp.Literal.number(0)
        for key in keys:
            text = exp.Cast(this=key, to=exp.DataType.build("text"))
            hashed = exp.Anonymous(this="hashtextextended", expressions=[text, hashed])
        # It returns a signed bigint; masking the sign bit keeps MOD
        # non-negative without abs(), which overflows on the minimum value.
        return exp.BitwiseAnd(this=hashed, expression=exp.Literal.number(9223372036854775807))

    def _random(self) -> exp.Expr:
        return exp.Anonymous(this="random")

    def sample(self, select: exp.Select, percent: float, params: dict[str, object], *,
               table_sample: bool = True) -> exp.Select:
        if not table_sample:  # a CTE, a subquery or a view: TABLESAMPLE is refused there
            return super().sample(select, percent, params)
        # BERNOULLI samples rows, not pages, so clustered keys are not over-represented.
        params["dms_percent"] = percent
        table = select.args["from_"].this
        table.set(
            "sample",
            exp.TableSample(
                method=exp.var("BERNOULLI"), percent=exp.Placeholder(this="dms_percent")
            ),
        )
        return select


class MySQL(ChunkDialect):
    NAME = "mysql"
    ALIASES = ("mariadb",)
    SQLGLOT_DIALECT = "mysql"
    PARAM_STYLE = ParamStyle.PYFORMAT
    # MySQL refuses OFFSET without LIMIT; its manual's idiom is the max BIGINT UNSIGNED.
    OFFSET_WITHOUT_LIMIT = 18446744073709551615

    def _hash(self, keys: list[exp.Expr]) -> exp.Expr:
        # CRC32 hashes bytes, but a _ci collation calls 'e' and 'E' equal and a
        # PAD SPACE one 'a' and 'a ': hashing the collation's weights of the
        # value without trailing spaces gives equal values one bucket, so a
        # GROUP BY or DISTINCT on the key never sees one group in two chunks.
        # (Unequal values sharing a bucket costs nothing.)  CRC32 is unsigned,
        # so MOD is already in [0, n).
        weights = [
            exp.Anonymous(this="WEIGHT_STRING", expressions=[exp.Anonymous(this="RTRIM",
                                                                          expressions=[k])])
            for k in keys
        ]
        arg: exp.Expr = (
            weights[0]
            if len(weights) == 1
            else exp.Anonymous(this="CONCAT_WS", expressions=[exp.Literal.string("|"), *weights])
        )
        return exp.Anonymous(this="CRC32", expressions=[arg])


class Oracle(ChunkDialect):
    NAME = "oracle"
    SQLGLOT_DIALECT = "dmsoracle"  # sqlglot's Oracle, writing MINUS (see oracle_sqlglot)
    PARAM_STYLE = ParamStyle.NAMED
    # Oracle compares row values only with = and <>.
    ROW_VALUE_COMPARISON = False
    ROW_LOCATOR = "ROWID"
    ROW_ORDER_PSEUDOCOLUMNS = frozenset({"ROWNUM"})
    # Oracle sorts text by NLS_SORT but compares it by NLS_COMP, which can
    # differ (NLS_SORT follows NLS_LANGUAGE, NLS_COMP defaults to BINARY):
    # bounds taken from ORDER BY would then not ascend for ``<``.  Pinning
    # both makes them one order -- binary, or a column's declared collation,
    # which both then use.
    SESSION_SETUP = ("ALTER SESSION SET NLS_SORT = BINARY", "ALTER SESSION SET NLS_COMP = BINARY")
    UNSUPPORTED_STRATEGIES: ClassVar[dict[str, str]] = {
        k: v for k, v in ChunkDialect.UNSUPPORTED_STRATEGIES.items() if k != "rowid"
    }

    def _hash(self, keys: list[exp.Expr]) -> exp.Expr:
        # ORA_HASH returns 0..4294967295; composite keys are hashed as one string.
        arg = keys[0]
        for extra in keys[1:]:
            arg = exp.DPipe(
                this=exp.DPipe(this=arg, expression=exp.Literal.string("|")), expression=extra
            )
        return exp.Anonymous(this="ORA_HASH", expressions=[arg])

    def _random(self) -> exp.Expr:
        return exp.column("VALUE", table="DBMS_RANDOM")

    def sample(self, select: exp.Select, percent: float, params: dict[str, object], *,
               table_sample: bool = True) -> exp.Select:
        if not table_sample:
            return super().sample(select, percent, params)
        # Oracle's SAMPLE clause takes only a literal; the percentage is our own
        # validated float, never user data, so writing it is safe.
        table = select.args["from_"].this
        table.set("sample", exp.TableSample(percent=exp.Literal.number(repr(float(percent)))))
        return select


def _load_backends() -> None:
    """A source database's dialect may live in its backend module (SQLite's does:
    ``dms_pkg.backends.sqlite_chunking``): load them before looking one up."""
    from dms_pkg.backends.base import registered

    registered()


def allowed_dialects() -> list[str]:
    """Every accepted dialect name, canonical names and aliases, sorted."""
    _load_backends()
    names = set(_REGISTRY)
    for cls in _REGISTRY.values():
        names.update(cls.ALIASES)
    return sorted(names)


def get_dialect(name: str) -> ChunkDialect:
    """Look a dialect up by name or alias (case-insensitive)."""
    wanted = (name or "").strip().lower()
    if not any(wanted == c.NAME or wanted in c.ALIASES for c in _REGISTRY.values()):
        _load_backends()
    for cls in _REGISTRY.values():
        if wanted == cls.NAME or wanted in cls.ALIASES:
            return cls()
    raise DmsError(
        f'unknown SQL dialect "{name}"; allowed dialects: ' + ", ".join(allowed_dialects()),
        sqlstate=INVALID_PARAMETER_VALUE,
        hint="pass the source database's dialect, for example dialect => 'oracle'",
    )
