"""docs/schemas: valid JSON Schemas that refuse what the commands must not print."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


@pytest.mark.parametrize("name", ["profile", "schema-diff", "table-compare"])
def test_schemas_are_valid_and_not_vacuous(name: str) -> None:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"kind": name, "version": 1}, schema)  # no pairs / tables


def test_a_difference_of_an_unknown_kind_is_refused() -> None:
    schema = json.loads((SCHEMAS / "schema-diff.schema.json").read_text())
    doc = {"kind": "schema-diff", "version": 1, "summary": {"pairs": 1, "equal": 0,
                                                            "different": 1, "errors": 0},
           "pairs": [{"pair": "a:b", "a": "a", "b": "b", "status": "different", "error": None,
                      "seconds": 0.1, "differences": [{"kind": "colour", "column": "x",
                                                       "a": 1, "b": 2}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
    doc["pairs"][0]["differences"][0]["kind"] = "type"  # type: ignore[index]
    jsonschema.validate(doc, schema)
