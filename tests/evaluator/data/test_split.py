import hashlib

import numpy as np

from evaluator.data.split import DEFAULT_SPLIT_SALT, public_mask, split_uniform

MASK64 = (1 << 64) - 1


def documented_uniform(search_id: int, salt: str) -> float:
    """The formula of the split module's docstring, in plain Python integers."""
    key = int.from_bytes(hashlib.sha256(salt.encode()).digest()[:8], "little")
    z = (((search_id & MASK64) ^ key) + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return (z >> 11) / 2**53


def test_uniform_follows_the_documented_formula() -> None:
    ids = np.array([0, 1, 2, 30, 2080, 123_456_789, -5, 2**62], dtype=np.int64)
    expected = [documented_uniform(int(i), DEFAULT_SPLIT_SALT) for i in ids]
    assert split_uniform(ids, DEFAULT_SPLIT_SALT).tolist() == expected


def test_public_fraction_is_close_to_thirty_percent_of_search_ids() -> None:
    mask = public_mask(np.arange(200_000, dtype=np.int64))
    assert abs(mask.mean() - 0.3) < 0.005


def test_split_depends_on_the_salt() -> None:
    ids = np.arange(10_000, dtype=np.int64)
    assert (public_mask(ids, "a") != public_mask(ids, "b")).mean() > 0.3


def test_split_of_an_id_does_not_depend_on_its_neighbours() -> None:
    ids = np.arange(1_000, dtype=np.int64)
    whole = public_mask(ids)
    pieces = np.concatenate([public_mask(ids[:7]), public_mask(ids[7:500]), public_mask(ids[500:])])
    assert (whole == pieces).all()
    assert (public_mask(ids[::-1]) == whole[::-1]).all()
