"""Find the driving table of a query and the SELECT where its chunk filter goes.

The driving table is the table whose rows are split.  It is the first table
in the outermost FROM, unless the chunk key is qualified by another alias, in
which case it is that alias's table (any joined table works: the filter goes
into the WHERE clause, after the join, so each result row is kept or dropped
by its own key value — exact even for outer joins).

When the driving source is a CTE or a derived table (subquery in FROM) we
follow it down to its base table, so the filter lands where the database can
use an index or a TID/ROWID range, but only when that is provably exact:

* the inner query is a plain SELECT that is itself safe to split on the
  mapped key (see ``safety``);
* the key is one of its output columns as a plain column (``x`` or
  ``t.x AS k``), or it selects ``*`` from a single source;
* the CTE is referenced once (a filter inside a CTE used twice would filter
  both uses);
* the source is not on the NULL-supplied side of an outer join (filtering
  inside it would turn missing matches into NULL-extended rows).

Otherwise the filter stays in the outer SELECT, on the derived relation's
output column: still exact, only slower.  An unqualified projection over a
join (``SELECT id FROM a JOIN b``) is not followed either, because which table
owns ``id`` is unknown without a catalog.

For ``UNION ALL`` every branch gets its own path; the key names an output
column and is matched by position in each branch.

``analyze_query(..., locate=True)`` only finds the driving table, without the
safety rules: the planner needs the table's catalog (columns, primary key)
before it knows the key the safety rules judge.  ``key_above`` then carries a
key of that table -- its primary key, as the catalog spells it -- up to the
names the outermost query sees (``WITH r AS (SELECT id AS order_id ...)``
makes ``id`` the key ``order_id``), so the default key is analysed like a
key the user named.  ``with_row_key`` makes SQLite's hidden ``rowid`` the key
of a physical path: it sits on the base table itself, below every level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlglot import exp

from dms_pkg.chunking import safety
from dms_pkg.chunking.dialects import ChunkDialect, get_dialect
from dms_pkg.chunking.parse import parse_key, parse_query
from dms_pkg.errors import INVALID_PARAMETER_VALUE, UNDEFINED_COLUMN, UNDEFINED_TABLE, DmsError

PATH_MARK = "dms_chunk_path"


@dataclass
class Level:
    """One SELECT on the way from the top of the query to the driving table."""

    select: exp.Select
    source: exp.Expr  # the FROM/JOIN item the driving rows come through
    qualifier: exp.Identifier  # alias (or table name) that qualifies its columns
    key: list[exp.Column] | None  # key columns qualified for this SELECT; None = physical


@dataclass
class DrivingPath:
    """Where one chunk filter goes: the last level's SELECT and its key columns."""

    levels: list[Level]
    table: exp.Table | None  # the base table, or None when it stays a derived relation
    relation_name: str  # SQL text naming the driving relation, for messages

    @property
    def target(self) -> Level:
        return self.levels[-1]


@dataclass
class QueryAnalysis:
    """The parsed query, the driving paths, and why it cannot be split (if so)."""

    dialect: ChunkDialect
    sql: str
    tree: exp.Query
    key: list[exp.Column] | None
    paths: list[DrivingPath] = field(default_factory=list)
    refused_reason: str | None = None

    @property
    def is_set_operation(self) -> bool:
        return isinstance(self.tree, exp.SetOperation)

    @property
    def driving_table(self) -> str | None:
        return self.paths[0].relation_name if self.paths else None


def analyze_query(
    sql: str,
    dialect: str | ChunkDialect,
    key: str | Sequence[str] | None = None,
    *,
    columns: Sequence[str] | None = None,
    locate: bool = False,
) -> QueryAnalysis:
    """Parse ``sql`` and find its driving table(s) for ``key``.

    ``columns``, when given, are the driving table's column names; a key
    column not among them is refused (42703).  Refusals for query shape are
    returned in ``refused_reason``; bad input raises DmsError.  With
    ``locate`` the shape is not judged: the paths only say where the driving
    table is (the first branch's, for a set operation without a key).
    """
    chunk_dialect = get_dialect(dialect) if isinstance(dialect, str) else dialect
    tree = parse_query(sql, chunk_dialect)
    user_key = parse_key(key, chunk_dialect) if key is not None else None
    resolver = _Resolver(tree, chunk_dialect, check_safety=not locate)
    analysis = QueryAnalysis(chunk_dialect, sql, tree, user_key)
    result = resolver.resolve_root(user_key)
    if isinstance(result, str):
        analysis.refused_reason = result
    else:
        analysis.paths = result
        if not locate:
            analysis.refused_reason = _off_path_refusal(tree, result, chunk_dialect)
        for index, path in enumerate(result):
            for level in path.levels:
                level.select.meta[PATH_MARK] = index
        if columns is not None and result:
            _check_columns(result[0], columns, chunk_dialect)
    return analysis


def key_above(analysis: QueryAnalysis, names: Sequence[str]) -> str | None:
    """The chunk key, as the outermost query names it, for the driving table's
    columns ``names`` (spelled as the catalog stores them); ``None`` when a
    level between them and the top does not pass them on as plain columns.

    ``analysis`` must have a path down to a base table (``locate`` finds it).
    For a set operation the key is the first branch's output column, as
    every UNION ALL key is.
    """
    if not analysis.paths or analysis.paths[0].table is None:
        return None
    dialect = analysis.dialect
    levels = analysis.paths[0].levels
    current: list[exp.Identifier] = [_identifier(name, dialect) for name in names]
    # levels[d].select reads the relation levels[d].source; going up, that
    # relation's columns are the outputs of levels[d].select as the level
    # above sees them (renamed by a column alias list, when it has one).
    for depth in range(len(levels) - 1, 0, -1):
        renames = _alias_columns(_definition(levels[depth].select))
        found = _outputs(levels[depth].select, levels[depth].qualifier, current, renames, dialect)
        if found is None:
            return None
        current = found
    if analysis.is_set_operation:
        found = _outputs(levels[0].select, levels[0].qualifier, current, None, dialect)
        if found is None:
            return None
        current = found
    return ", ".join(exp.Column(this=ident.copy()).sql(dialect.sqlglot) for ident in current)


def _identifier(name: str, dialect: ChunkDialect) -> exp.Identifier:
    """``name`` as written in SQL: quoted only when the database would fold it."""
    plain = exp.to_identifier(name)
    if plain.quoted or dialect.normalize(plain) != name:
        return exp.to_identifier(name, quoted=True)
    return plain


def _definition(select: exp.Select) -> exp.Expr | None:
    """The CTE or aliased subquery whose body ``select`` is (through parentheses)."""
    node = select.parent
    while isinstance(node, exp.Subquery) and not node.alias:
        node = node.parent
    return node


def _alias_columns(source: exp.Expr | None) -> list[exp.Identifier] | None:
    """The column alias list of a CTE or derived table (``r (a, b) AS ...``), if any."""
    if source is None:
        return None
    alias = source.args.get("alias")
    if isinstance(alias, exp.TableAlias) and alias.columns:
        return [c for c in alias.columns if isinstance(c, exp.Identifier)]
    return None


def _outputs(
    select: exp.Select,
    qualifier: exp.Identifier,
    wanted: Sequence[exp.Identifier],
    renames: list[exp.Identifier] | None,
    dialect: ChunkDialect,
) -> list[exp.Identifier] | None:
    """The output names under which ``select`` passes on its source columns
    ``wanted`` as plain columns (``id``, ``q.id AS k`` or ``*``)."""
    own = dialect.normalize(qualifier)
    found: list[exp.Identifier] = []
    for ident in wanted:
        name = dialect.normalize(ident)
        output: exp.Identifier | None = None
        for position, proj in enumerate(select.expressions):
            inner = proj.this if isinstance(proj, exp.Alias) else proj
            star = isinstance(inner, exp.Star) or (
                isinstance(inner, exp.Column) and isinstance(inner.this, exp.Star)
            )
            table = inner.args.get("table") if isinstance(inner, exp.Column) else None
            if isinstance(table, exp.Identifier) and dialect.normalize(table) != own:
                continue
            if star:
                if renames is None:  # a star keeps the name; its position is unknown
                    output = ident
                    break
                continue
            if not isinstance(inner, exp.Column) or not isinstance(inner.this, exp.Identifier):
                continue
            if dialect.normalize(inner.this) != name:
                continue
            if renames is not None:
                output = renames[position] if position < len(renames) else None
            elif isinstance(proj, exp.Alias) and isinstance(proj.args.get("alias"), exp.Identifier):
                output = proj.args["alias"]
            else:
                output = inner.this
            break
        if output is None:
            return None
        found.append(output.copy())
    return found


def with_row_key(analysis: QueryAnalysis) -> QueryAnalysis | None:
    """The physical ``analysis`` keyed on the dialect's hidden row key (SQLite's
    ``rowid``) of its driving table, or ``None`` when the path ends in a derived
    relation, which has no rowid.

    The shape was judged for a physical split, which no GROUP BY or DISTINCT
    contains -- the same verdict a key no query level selects gets -- so the
    rowid can filter the base table below every level.
    """
    name = analysis.dialect.IMPLICIT_ROW_KEY
    if name is None or len(analysis.paths) != 1 or analysis.paths[0].table is None:
        return None
    path = analysis.paths[0]
    target = path.target
    column = exp.Column(this=exp.to_identifier(name), table=target.qualifier.copy())
    levels = [*path.levels[:-1], Level(target.select, target.source, target.qualifier, [column])]
    return QueryAnalysis(
        analysis.dialect, analysis.sql, analysis.tree, [exp.Column(this=exp.to_identifier(name))],
        [DrivingPath(levels, path.table, path.relation_name)], analysis.refused_reason,
    )


def _off_path_refusal(
    tree: exp.Query, paths: list[DrivingPath], dialect: ChunkDialect
) -> str | None:
    on_path = {id(level.select) for path in paths for level in path.levels}
    for node in tree.walk():
        if isinstance(node, exp.Query) and id(node) not in on_path and node is not tree:
            reason = safety.subquery_refusal(node, dialect)
            if reason:
                return reason
    return None


def _check_columns(path: DrivingPath, columns: Sequence[str], dialect: ChunkDialect) -> None:
    key = path.target.key
    if key is None or path.table is None:
        return
    known = {dialect.normalize(exp.to_identifier(c, quoted=True)) for c in columns}
    known |= {dialect.normalize(exp.to_identifier(c)) for c in columns if c.isidentifier()}
    if dialect.IMPLICIT_ROW_KEY:  # SQLite's rowid is in no column list
        known.add(dialect.normalize(exp.to_identifier(dialect.IMPLICIT_ROW_KEY)))
    for column in key:
        if dialect.normalize(column.this) not in known:
            raise DmsError(
                f'column "{column.name}" does not exist in table {path.relation_name}',
                sqlstate=UNDEFINED_COLUMN,
                hint="existing columns: " + ", ".join(columns),
            )


class _Resolver:
    def __init__(self, tree: exp.Query, dialect: ChunkDialect, *, check_safety: bool = True
                 ) -> None:
        self.tree = tree
        self.dialect = dialect
        self.check_safety = check_safety

    # -- helpers ---------------------------------------------------------

    def _norm(self, ident: exp.Identifier) -> str:
        return self.dialect.normalize(ident)

    def _sql(self, node: exp.Expr) -> str:
        return node.sql(self.dialect.sqlglot)

    def _ctes(self, query: exp.Expr) -> dict[str, exp.CTE]:
        with_ = query.args.get("with_")
        if not isinstance(with_, exp.With):
            return {}
        found: dict[str, exp.CTE] = {}
        for cte in with_.expressions:
            alias = cte.args.get("alias")
            if isinstance(cte, exp.CTE) and isinstance(alias, exp.TableAlias) and alias.this:
                found[self._norm(alias.this)] = cte
        return found

    def _references(self, name: str) -> int:
        return sum(
            1
            for t in self.tree.find_all(exp.Table)
            if not t.args.get("db")
            and isinstance(t.this, exp.Identifier)
            and self._norm(t.this) == name
        )

    @staticmethod
    def _sources(select: exp.Select) -> list[exp.Expr]:
        from_ = select.args.get("from_")
        if not isinstance(from_, exp.From):
            return []
        sources: list[exp.Expr] = [from_.this]
        sources.extend(join.this for join in select.args.get("joins") or [])
        return sources

    @staticmethod
    def _qualifier(source: exp.Expr) -> exp.Identifier | None:
        alias = source.args.get("alias")
        if isinstance(alias, exp.TableAlias) and isinstance(alias.this, exp.Identifier):
            return alias.this
        if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
            return source.this
        return None

    def _nullable(self, select: exp.Select, index: int, qualifier: exp.Identifier) -> bool:
        joins = select.args.get("joins") or []
        if index > 0 and joins[index - 1].side in ("LEFT", "FULL"):
            return True
        if any(join.side in ("RIGHT", "FULL") for join in joins[index:]):
            return True
        wanted = self._norm(qualifier)
        for node in safety.own_nodes(select):  # Oracle's (+) outer-join marker
            if isinstance(node, exp.Column) and node.args.get("join_mark"):
                table = node.args.get("table")
                if isinstance(table, exp.Identifier) and self._norm(table) == wanted:
                    return True
        return False

    # -- resolution ------------------------------------------------------

    def resolve_root(self, key: list[exp.Column] | None) -> list[DrivingPath] | str:
        ctes = self._ctes(self.tree)
        if not isinstance(self.tree, exp.SetOperation):
            assert isinstance(self.tree, exp.Select)
            result = self._resolve(self.tree, key, ctes, [], user_level=True)
            return [result] if isinstance(result, DrivingPath) else result or safety.NO_TABLE
        return self._resolve_set_operation(self.tree, key, ctes)

    def _resolve_set_operation(
        self, root: exp.SetOperation, key: list[exp.Column] | None, ctes: dict[str, exp.CTE]
    ) -> list[DrivingPath] | str:
        limit = root.args.get("limit")
        if self.check_safety:
            if isinstance(limit, exp.Fetch):
                return safety.FETCH_FIRST
            if limit is not None:
                return safety.LIMIT
            if root.args.get("offset") is not None:
                return safety.OFFSET
        branches: list[exp.Expr] = []
        pending: list[exp.Expr] = [root]
        while pending:
            node = pending.pop(0)
            while isinstance(node, exp.Subquery) and not node.alias:
                node = node.this
            if isinstance(node, exp.SetOperation):
                reason = safety.set_operation_refusal(node) if self.check_safety else None
                if reason:
                    return reason
                pending[:0] = [node.this, node.expression]
            else:
                branches.append(node)
        if key is None and not self.check_safety:  # locate: the first branch's table
            first = branches[0]
            found = (self._resolve(first, None, ctes, [], user_level=True)
                     if isinstance(first, exp.Select) else None)
            return [found] if isinstance(found, DrivingPath) else found or safety.NO_TABLE
        if key is None:
            return safety.PHYSICAL_SET_OPERATION
        if any(k.args.get("table") is not None for k in key):
            raise DmsError(
                "the chunk key of a UNION ALL query must name an output column "
                f"without a table qualifier, got {safety.key_sql(key, self.dialect)}",
                sqlstate=INVALID_PARAMETER_VALUE,
                hint="use the column name the first branch selects",
            )
        first = branches[0]
        if not isinstance(first, exp.Select):
            return safety.UNION_BRANCH_KEY.format(branch=1, key=safety.key_sql(key, self.dialect))
        positions = [self._output_position(first, k.this) for k in key]
        paths: list[DrivingPath] = []
        for number, branch in enumerate(branches, start=1):
            mapped = (
                self._branch_key(branch, key, positions) if isinstance(branch, exp.Select) else None
            )
            if mapped is None or not isinstance(branch, exp.Select):
                return safety.UNION_BRANCH_KEY.format(
                    branch=number, key=safety.key_sql(key, self.dialect)
                )
            result = self._resolve(branch, mapped, ctes, [], user_level=False)
            if not isinstance(result, DrivingPath):
                return result or safety.UNION_BRANCH_KEY.format(
                    branch=number, key=safety.key_sql(key, self.dialect)
                )
            paths.append(result)
        return paths

    def _output_position(self, select: exp.Select, name: exp.Identifier) -> int | None:
        wanted = self._norm(name)
        for position, proj in enumerate(select.expressions):
            if isinstance(proj.this, exp.Star) or isinstance(proj, exp.Star):
                continue
            ident = proj.args.get("alias") if isinstance(proj, exp.Alias) else proj.this
            if isinstance(proj, exp.Alias) and isinstance(ident, exp.Identifier):
                if self._norm(ident) == wanted:
                    return position
            elif isinstance(proj, exp.Column) and self._norm(proj.this) == wanted:
                return position
        return None

    def _branch_key(
        self, branch: exp.Select, key: list[exp.Column], positions: list[int | None]
    ) -> list[exp.Column] | None:
        mapped: list[exp.Column] = []
        for column, position in zip(key, positions, strict=True):
            found = (
                self._map_position(branch, position)
                if position is not None
                else self._map_through(branch, column.this)
            )
            if found is None:
                return None
            mapped.append(found)
        return mapped

    def _map_position(self, select: exp.Select, position: int) -> exp.Column | None:
        if position >= len(select.expressions):
            return None
        proj = select.expressions[position]
        inner = proj.this if isinstance(proj, exp.Alias) else proj
        if isinstance(inner, exp.Column) and isinstance(inner.this, exp.Identifier):
            return inner.copy()
        return None

    def _map_through(
        self,
        inner: exp.Select,
        name: exp.Identifier,
        cte_columns: list[exp.Identifier] | None = None,
    ) -> exp.Column | None:
        """The inner column that an outer reference ``name`` denotes, if plain."""
        wanted = self._norm(name)
        if cte_columns:
            for position, column_name in enumerate(cte_columns):
                if self._norm(column_name) == wanted:
                    return self._map_position(inner, position)
            return None
        found = self._output_position(inner, name)
        if found is not None:
            return self._map_position(inner, found)
        stars = [
            p
            for p in inner.expressions
            if isinstance(p, exp.Star)
            or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
        ]
        if len(stars) != 1:
            return None
        star_table = stars[0].args.get("table")
        if isinstance(star_table, exp.Identifier):
            return exp.Column(this=name.copy(), table=star_table.copy())
        if len(self._sources(inner)) == 1:
            return exp.Column(this=name.copy())
        return None

    def _resolve(
        self,
        select: exp.Select,
        key: list[exp.Column] | None,
        ctes: dict[str, exp.CTE],
        above: list[Level],
        *,
        user_level: bool,
    ) -> DrivingPath | str | None:
        """Resolve the driving path below ``select``.

        Returns the path, a refusal reason, or ``None`` when the key cannot be
        placed here (only possible below the user's level, where the caller
        then keeps the filter one level up).
        """
        sources = self._sources(select)
        if not sources:
            return safety.NO_TABLE if user_level else None
        index = self._pick_source(select, sources, key, user_level=user_level)
        if index is None:
            return None
        source = sources[index]
        qualifier = self._qualifier(source)
        if qualifier is None:
            if not user_level:
                return None
            return safety.UNNAMED_SOURCE.format(relation=self._sql(source))
        qualified = (
            [exp.Column(this=k.this.copy(), table=qualifier.copy()) for k in key]
            if key is not None
            else None
        )
        reason = (safety.select_refusal(select, qualified, self.dialect)
                  if self.check_safety else None)
        if reason:
            return reason if user_level else None
        levels = [*above, Level(select, source, qualifier, qualified)]
        scope = {**ctes, **self._ctes(select)}

        inner: exp.Expr | None = None
        cte_columns: list[exp.Identifier] | None = None
        if isinstance(source, exp.Table) and not source.args.get("db"):
            name = self._norm(source.this) if isinstance(source.this, exp.Identifier) else ""
            cte = scope.get(name)
            if cte is None:
                return DrivingPath(levels, source, self._sql(_bare_table(source)))
            if self._references(name) == 1:
                inner = cte.this
                alias = cte.args.get("alias")
                if isinstance(alias, exp.TableAlias) and alias.columns:
                    cte_columns = [c for c in alias.columns if isinstance(c, exp.Identifier)]
        elif isinstance(source, exp.Table):
            return DrivingPath(levels, source, self._sql(_bare_table(source)))
        elif isinstance(source, exp.Subquery):
            inner = source.this
            alias_cols = source.args.get("alias")
            if isinstance(alias_cols, exp.TableAlias) and alias_cols.columns:
                cte_columns = [c for c in alias_cols.columns if isinstance(c, exp.Identifier)]
        relation = self._sql(qualifier)

        while isinstance(inner, exp.Subquery) and not inner.alias:
            inner = inner.this
        if isinstance(inner, exp.Select) and not self._nullable(select, index, qualifier):
            inner_key: list[exp.Column] | None = None
            followable = True
            if qualified is not None:
                inner_key = []
                for column in qualified:
                    mapped = self._map_through(inner, column.this, cte_columns)
                    if mapped is None:
                        followable = False
                        break
                    inner_key.append(mapped)
            if followable:
                below = self._resolve(inner, inner_key, scope, levels, user_level=False)
                if isinstance(below, DrivingPath):
                    return below
        return DrivingPath(levels, None, relation)

    def _pick_source(
        self,
        select: exp.Select,
        sources: list[exp.Expr],
        key: list[exp.Column] | None,
        *,
        user_level: bool,
    ) -> int | None:
        qualifiers = {
            self._norm(t): t
            for k in key or []
            if isinstance((t := k.args.get("table")), exp.Identifier)
        }
        if not qualifiers:
            if key is not None and not user_level and len(sources) > 1:
                return None  # unqualified column over a join: owner unknown
            return 0
        if len(qualifiers) > 1:
            if user_level:
                raise DmsError(
                    "all columns of a composite chunk key must belong to one table, got "
                    + safety.key_sql(key or [], self.dialect),
                    sqlstate=INVALID_PARAMETER_VALUE,
                    hint="qualify every key column with the same table alias",
                )
            return None
        ((wanted, ident),) = qualifiers.items()
        names: list[str] = []
        for index, source in enumerate(sources):
            qualifier = self._qualifier(source)
            if qualifier is None:
                continue
            names.append(self._sql(qualifier))
            if self._norm(qualifier) == wanted:
                return index
        if not user_level:
            return None
        raise DmsError(
            f"chunk key {safety.key_sql(key or [], self.dialect)} refers to "
            f'"{ident.name}", which is not a table or alias in the outermost FROM clause',
            sqlstate=UNDEFINED_TABLE,
            detail="tables and aliases there: " + ", ".join(names),
            hint="qualify the key with the alias of the table whose rows should be split",
        )


def _bare_table(table: exp.Table) -> exp.Table:
    """The table without its alias, for naming it in messages and stats SQL."""
    bare = table.copy()
    bare.set("alias", None)
    return bare
