"""Render a sqlglot tree to driver-ready SQL text in a bind-parameter style.

Chunk predicates carry their bounds as ``exp.Placeholder`` nodes, never as
literals.  sqlglot writes placeholders in one fixed way per dialect, but the
driver decides the style (psycopg ``%(name)s``, oracledb ``:name``, plpy
``$1``), and pyformat drivers also need every literal ``%`` doubled — a
``LIKE 'a%'`` in the user's query would otherwise be read as a bind marker.

So placeholders are generated as unique sentinel words, the query text is
escaped for the style, and only then are the sentinels swapped for the
style's markers.  The sentinel is checked not to occur in the text, so a
user's literal can never be mistaken for one of our binds.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from dms_pkg.chunking.dialects import ChunkDialect, ParamStyle


def render(
    expression: exp.Expr,
    dialect: ChunkDialect,
    param_names: Sequence[str],
    style: ParamStyle | None = None,
) -> str:
    """SQL for ``expression`` with our placeholders written in ``style``.

    ``param_names`` fixes the order for the positional ``NUMERIC`` style.
    Placeholders not named in ``param_names`` are left as sqlglot writes them.
    """
    style = style or dialect.PARAM_STYLE
    order = {name: i for i, name in enumerate(param_names)}
    nonce = 0
    while True:
        prefix = f"dmsbind{nonce}x"

        def swap(node: exp.Expr, prefix: str = prefix) -> exp.Expr:
            if isinstance(node, exp.Placeholder) and node.name in order:
                return exp.var(f"{prefix}{order[node.name]}q")
            return node

        marked = expression.transform(swap)  # on a copy
        text = marked.sql(dialect.sqlglot)
        used = sum(1 for n in expression.find_all(exp.Placeholder) if n.name in order)
        if text.count(prefix) == used:
            break
        nonce += 1  # the query itself contains our sentinel text; pick another

    if style is ParamStyle.PYFORMAT:
        text = text.replace("%", "%%")
    for name, index in order.items():
        if style is ParamStyle.PYFORMAT:
            marker = f"%({name})s"
        elif style is ParamStyle.NAMED:
            marker = f":{name}"
        else:
            marker = f"${index + 1}"
        text = text.replace(f"{prefix}{index}q", marker)
    return text

