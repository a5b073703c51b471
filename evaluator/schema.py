"""Facts of the challenge's data format (SPEC "Data"), shared by every package."""

from __future__ import annotations

from typing import Final, Literal

N_CATEGORICAL: Final = 16
N_NUMERICAL: Final = 63

CATEGORICAL_COLUMNS: Final[tuple[str, ...]] = tuple(
    f"categorical_{i}" for i in range(1, N_CATEGORICAL + 1)
)
NUMERICAL_COLUMNS: Final[tuple[str, ...]] = tuple(
    f"numerical_{i}" for i in range(1, N_NUMERICAL + 1)
)
LABEL_COLUMNS: Final[tuple[str, str]] = ("click", "conversion")
PROCESSED_COLUMNS: Final[tuple[str, ...]] = (
    "search_id",
    *CATEGORICAL_COLUMNS,
    *NUMERICAL_COLUMNS,
    *LABEL_COLUMNS,
)

Country = Literal["NL", "ES", "FR", "US"]
COUNTRIES: Final[tuple[Country, ...]] = ("NL", "ES", "FR", "US")

Task = Literal["ctr", "cvr", "ctcvr"]
TASKS: Final[tuple[Task, ...]] = ("ctr", "cvr", "ctcvr")

Split = Literal["public", "private", "full"]
SPLITS: Final[tuple[Split, ...]] = ("public", "private", "full")
PUBLIC_FRACTION: Final = 0.3


def parse_country(value: str) -> Country:
    """Normalise a country code, refusing anything that is not one of the four."""
    code = value.strip().upper()
    for country in COUNTRIES:
        if code == country:
            return country
    raise ValueError(f"unknown country {value!r}: expected one of {', '.join(COUNTRIES)}")
