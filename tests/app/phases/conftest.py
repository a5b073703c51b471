"""The phase tests' app client, its clock in the development phase until a test moves it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from app_factories import SetClock, World, clocked_client
from phases_factories import DURING


@pytest.fixture
def phase_client(world: World) -> Iterator[tuple[Any, SetClock]]:
    yield from clocked_client(world, DURING)
