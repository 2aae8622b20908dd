"""Test layout: tests/unit needs no server; tests/integration needs the real cluster.

Everything under tests/integration is marked ``integration`` automatically, so
``pytest -m "not integration"`` runs the fast part alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
