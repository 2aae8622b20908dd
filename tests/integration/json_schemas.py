"""The documented JSON shapes (docs/schemas/*.schema.json), for the tests to hold output to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def validate(document: dict[str, Any]) -> None:
    """Raise unless ``document`` fits the schema its ``kind`` names."""
    schema = json.loads((SCHEMAS / f"{document['kind']}.schema.json").read_text())
    jsonschema.validate(document, schema)
