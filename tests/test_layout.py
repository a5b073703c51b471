"""The test tree's own rule: pytest imports test modules by basename (rootdir mode, no
`__init__.py`), so two test files with one name break the whole collection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_module_and_helper_has_a_name_of_its_own() -> None:
    names = Counter(p.name for p in TESTS.rglob("*.py")
                    if p.name != "conftest.py" and "__pycache__" not in p.parts)
    assert [name for name, n in names.items() if n > 1] == []
