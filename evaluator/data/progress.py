"""Progress bars for the long data commands: on stderr, and only when asked for."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def progress_bar(enabled: bool, *, total: int, unit: str, desc: str) -> Iterator[Any]:
    """A tqdm bar; a silent one when `enabled` is false."""
    from tqdm import tqdm

    with tqdm(
        total=total, unit=unit, unit_scale=True, desc=desc, disable=not enabled, file=sys.stderr
    ) as bar:
        yield bar
