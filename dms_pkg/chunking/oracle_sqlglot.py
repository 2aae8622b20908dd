"""sqlglot's Oracle dialect, writing set operations as every Oracle release reads them.

sqlglot parses Oracle's ``MINUS`` into ``exp.Except`` and writes it back as
``EXCEPT``, which Oracle accepts only from release 21c: a chunk query of a
``... MINUS ...`` source would fail on 19c with ORA-00933.  This subclass
(registered by sqlglot under the name ``dmsoracle``) writes ``MINUS`` again;
parsing is Oracle's own.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.oracle import Oracle
from sqlglot.generators.oracle import OracleGenerator


class _Generator(OracleGenerator):
    def set_operation(self, expression: exp.SetOperation) -> str:
        text = str(super().set_operation(expression))
        if isinstance(expression, exp.Except):
            return text.replace("EXCEPT", "MINUS", 1)
        return text


class DmsOracle(Oracle):
    Generator = _Generator
