"""The prepared folder: one country's test (or train) set as compact, memory-mapped column arrays.

Layout of a prepared folder (written by `leaderboard data prepare`):

    meta.json         PreparedMeta as JSON
    click.npy         int8    [N]
    conversion.npy    int8    [N]
    categorical.npy   int32   [N, 16]
    numerical.npy     float32 [N, 63]
    public.npy        bool    [N]   True for rows of the public (30 %) split
    search_id.npy     int64   [N]

Arrays are plain `.npy` files so that `numpy.load(mmap_mode="r")` maps them without reading.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FORMAT_VERSION = 1
META_FILE = "meta.json"
ARRAY_FILES = ("click", "conversion", "categorical", "numerical", "public", "search_id")


class PreparedDataError(Exception):
    """A prepared folder is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class PreparedMeta:
    format_version: int
    n_rows: int
    n_public: int
    source_name: str
    source_sha256: str
    split_salt: str
    # Per categorical field, the largest index seen (vocabulary size - 1).
    categorical_max: list[int]
    n_clicks: int
    n_conversions: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> PreparedMeta:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class PreparedData:
    path: Path
    meta: PreparedMeta
    click: npt.NDArray[np.int8]
    conversion: npt.NDArray[np.int8]
    categorical: npt.NDArray[np.int32]
    numerical: npt.NDArray[np.float32]
    public: npt.NDArray[np.bool_]
    search_id: npt.NDArray[np.int64]

    @property
    def n_rows(self) -> int:
        return self.meta.n_rows

    @classmethod
    def open(cls, path: Path | str) -> PreparedData:
        """Memory-map a prepared folder; nothing is read until it is used."""
        folder = Path(path)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise PreparedDataError(f"{folder}: not a prepared folder (no {META_FILE})")
        meta = PreparedMeta.from_json(meta_path.read_text())
        if meta.format_version != FORMAT_VERSION:
            raise PreparedDataError(
                f"{folder}: format version {meta.format_version}, expected {FORMAT_VERSION}; "
                "prepare it again"
            )
        arrays: dict[str, np.ndarray] = {}
        for name in ARRAY_FILES:
            file = folder / f"{name}.npy"
            if not file.is_file():
                raise PreparedDataError(f"{folder}: {file.name} is missing; prepare it again")
            array = np.load(file, mmap_mode="r")
            if array.shape[0] != meta.n_rows:
                raise PreparedDataError(
                    f"{file}: {array.shape[0]} rows, meta.json says {meta.n_rows}"
                )
            arrays[name] = array
        return cls(path=folder, meta=meta, **arrays)
