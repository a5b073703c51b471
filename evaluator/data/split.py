"""The deterministic public / private split of a test set.

A row is public when its search page is: `u(search_id) < PUBLIC_FRACTION`, where

    key = first 8 bytes of sha256(salt as UTF-8), read as a little-endian uint64
    z   = (search_id as uint64, two's complement) XOR key
    z   = splitmix64(z)        # z += 0x9E3779B97F4A7C15; z ^= z >> 30; z *= 0xBF58476D1CE4E5B9;
                               # z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31  (mod 2**64)
    u   = (z >> 11) / 2**53    # uniform in [0, 1)

The split is by search page, not by row, because the items of one page share the user and query
features and their labels are correlated (one shopper, one intent): a row-level split would put
siblings on both sides, so the public score would leak information about private rows and the two
scores would not be independent samples. Whole pages held out behave like new traffic. Anyone can
recompute the split from `test.csv` and the salt, and it cannot depend on how the file is read.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
import numpy.typing as npt

from evaluator.schema import PUBLIC_FRACTION

DEFAULT_SPLIT_SALT: Final = "mtme-challenge-public-split-v1"

_GAMMA: Final = np.uint64(0x9E3779B97F4A7C15)
_MUL1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MUL2: Final = np.uint64(0x94D049BB133111EB)


def salt_key(salt: str) -> int:
    """The 64-bit key derived from a salt."""
    return int.from_bytes(hashlib.sha256(salt.encode("utf-8")).digest()[:8], "little")


def split_uniform(search_id: npt.NDArray[np.int64], salt: str) -> npt.NDArray[np.float64]:
    """A uniform number in [0, 1) per row, a pure function of (salt, search_id)."""
    z = np.ascontiguousarray(search_id, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        z = z ^ np.uint64(salt_key(salt))
        z = z + _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MUL1
        z = (z ^ (z >> np.uint64(27))) * _MUL2
        z = z ^ (z >> np.uint64(31))
    result: npt.NDArray[np.float64] = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return result


def public_mask(
    search_id: npt.NDArray[np.int64],
    salt: str = DEFAULT_SPLIT_SALT,
    fraction: float = PUBLIC_FRACTION,
) -> npt.NDArray[np.bool_]:
    """True for the rows of the public split."""
    result: npt.NDArray[np.bool_] = split_uniform(search_id, salt) < fraction
    return result
