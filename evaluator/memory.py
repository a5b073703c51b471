"""Large scratch and result arrays on small pages.

numpy asks the kernel for transparent huge pages for every large array (`madvise`). Where the
kernel's THP defrag setting is `madvise` (a common default), each huge-page fault may compact
memory first; on the 2-core VM the scoring benchmark runs on, filling 512 MB that way took
0.74 s of system time against 0.19 s on 4 KiB pages. The scoring path allocates a few arrays
of the test set's size per file, so those come from an anonymous memory map instead: plain
small pages, backed only as they are written, returned to the kernel when the array goes.
"""

from __future__ import annotations

import mmap
from typing import TypeVar

import numpy as np
import numpy.typing as npt

ScalarT = TypeVar("ScalarT", bound=np.generic)


def small_pages(n: int, dtype: type[ScalarT]) -> npt.NDArray[ScalarT]:
    """An uninitialised 1-D array of `n` elements of `dtype` in an anonymous memory map."""
    itemsize = np.dtype(dtype).itemsize
    if n * itemsize == 0:
        return np.zeros(n, dtype=dtype)
    return np.frombuffer(mmap.mmap(-1, n * itemsize), dtype=dtype)
